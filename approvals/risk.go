package approvals

import "fmt"

// Risk says why an open port is dangerous on the internet side.
type Risk struct {
	Service string // what usually listens there
	Why     string // one line for the owner
}

// riskyPorts are services that attackers scan the whole internet for; a
// share of one of them deserves a look even when a known device opened it.
// The port is the inside one: that is what decides which service answers.
var riskyPorts = map[uint16]Risk{
	21:    {"FTP", "sends passwords in clear text and is scanned for constantly"},
	22:    {"SSH", "remote shell; password guessing bots try it all day"},
	23:    {"Telnet", "remote shell without encryption; the favourite of IoT botnets"},
	25:    {"SMTP", "an open mail server is abused to send spam"},
	80:    {"HTTP", "a web interface, often a router's, camera's or NAS's admin page"},
	135:   {"Windows RPC", "Windows services that worms spread through"},
	139:   {"NetBIOS", "Windows file sharing, never meant for the internet"},
	443:   {"HTTPS", "a web interface, often an admin page"},
	445:   {"SMB", "Windows file sharing; WannaCry spread through it"},
	1433:  {"SQL Server", "a database open to password guessing"},
	1900:  {"SSDP", "UPnP discovery; used for reflection attacks"},
	2323:  {"Telnet (alt)", "remote shell scanned for by IoT botnets"},
	3306:  {"MySQL", "a database open to password guessing"},
	3389:  {"Remote Desktop", "Windows remote desktop; ransomware gangs' favourite way in"},
	5000:  {"UPnP/NAS admin", "often a NAS or UPnP admin interface"},
	5432:  {"PostgreSQL", "a database open to password guessing"},
	5900:  {"VNC", "remote screen access, often with a weak or no password"},
	5901:  {"VNC", "remote screen access, often with a weak or no password"},
	6379:  {"Redis", "a database that often has no password at all"},
	7547:  {"TR-069", "router management; attacked by the Mirai botnet"},
	8080:  {"HTTP (alt)", "a web interface, often a camera's or NAS's admin page"},
	8443:  {"HTTPS (alt)", "a web interface, often an admin page"},
	9200:  {"Elasticsearch", "a search database that often has no password"},
	27017: {"MongoDB", "a database that often has no password"},
}

// RiskOf returns the risk of a share by its inside port, and whether it is
// risky at all. The protocol matters little: scanners try both.
func RiskOf(internalPort uint16) (Risk, bool) {
	r, ok := riskyPorts[internalPort]
	return r, ok
}

func (r Risk) String() string {
	return fmt.Sprintf("%s: %s", r.Service, r.Why)
}
