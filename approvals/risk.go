package approvals

// Risk is a port attackers scan for. Why it is dangerous is chat text, so
// bot words it, by Service, in the owner's language.
type Risk struct {
	Service string // what usually listens there: "Remote Desktop"
}

// riskyPorts are services that attackers scan the whole internet for; a
// share of one of them deserves a look even when a known device opened it.
// The port is the inside one: that is what decides which service answers.
var riskyPorts = map[uint16]Risk{
	21:    {"FTP"},
	22:    {"SSH"},
	23:    {"Telnet"},
	25:    {"SMTP"},
	80:    {"HTTP"},
	135:   {"Windows RPC"},
	139:   {"NetBIOS"},
	443:   {"HTTPS"},
	445:   {"SMB"},
	1433:  {"SQL Server"},
	1900:  {"SSDP"},
	2323:  {"Telnet (alt)"},
	3306:  {"MySQL"},
	3389:  {"Remote Desktop"},
	5000:  {"UPnP/NAS admin"},
	5432:  {"PostgreSQL"},
	5900:  {"VNC"},
	5901:  {"VNC"},
	6379:  {"Redis"},
	7547:  {"TR-069"},
	8080:  {"HTTP (alt)"},
	8443:  {"HTTPS (alt)"},
	9200:  {"Elasticsearch"},
	27017: {"MongoDB"},
}

// RiskOf returns the risk of a share by its inside port, and whether it is
// risky at all. The protocol matters little: scanners try both.
func RiskOf(internalPort uint16) (Risk, bool) {
	r, ok := riskyPorts[internalPort]
	return r, ok
}
