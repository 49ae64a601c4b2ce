package image

import (
	"strings"
	"testing"
)

func TestParseAptProxy(t *testing.T) {
	for in, want := range map[string]string{
		"http://192.168.1.10:3142":        "http://192.168.1.10:3142/",
		"http://192.168.1.10:3142/":       "http://192.168.1.10:3142/",
		"HTTP://cache.lan":                "http://cache.lan/",
		"https://proxy.corp.example:8443": "https://proxy.corp.example:8443/",
		"http://[fd00::1]:3142":           "http://[fd00::1]:3142/",
		"http://[::1]":                    "http://[::1]/",
		"http://apt-cacher:3142":          "http://apt-cacher:3142/",
	} {
		got, err := ParseAptProxy(in)
		if err != nil || got != want {
			t.Errorf("ParseAptProxy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestParseAptProxyRefuses(t *testing.T) {
	for in, why := range map[string]string{
		"":                                "empty",
		"192.168.1.10:3142":               "no scheme",
		"socks5://h:1080":                 "not http or https",
		"ftp://h":                         "not http or https",
		"http://":                         "not a host name",
		"http://user:pw@h:3142":           "credentials",
		"http://h:3142/path":              "no path",
		"http://h:3142?x=1":               "no path, query",
		"http://h:3142#f":                 "no path, query",
		"http://h :3142":                  `contains ' '`,
		"http://h:3142\nAcquire::x \"y\"": `contains '\n'`,
		`http://h";`:                      `contains '"'`,
		"http://h'":                       `contains '\''`,
		"http://$(reboot)":                `contains '$'`,
		"http://h`id`":                    "contains '`'",
		"http://h:0":                      "port",
		"http://h:65536":                  "port",
		"http://h:":                       "port",
		"http://h:31a":                    "port",
		"http://h:03142":                  "port",
		"http://fd00::1:3142":             "brackets",
		"http://[fd00::1":                 "unclosed",
		"http://[10.0.0.1]:80":            "not an IPv6",
		"http://[fd00::1]x":               "follows the address",
		"http://-h":                       "not a host name",
		"http://a..b":                     "not a host name",
		"http://999.1.1.1":                "not a host name",
		"http://h_x":                      "not a host name",
		"http://hé":                       "contains",
	} {
		_, err := ParseAptProxy(in)
		if err == nil {
			t.Errorf("ParseAptProxy(%q) accepted", in)
			continue
		}
		if !strings.Contains(err.Error(), why) || !strings.Contains(err.Error(), "http://HOST[:PORT]") {
			t.Errorf("ParseAptProxy(%q) = %v; want it to say %q and show the form", in, err, why)
		}
	}
}
