module github.com/doorman-upnp/doorman

go 1.26.8

require github.com/huin/goupnp v1.3.0

require golang.org/x/sync v0.20.0 // indirect
