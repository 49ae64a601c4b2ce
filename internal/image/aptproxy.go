package image

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParseAptProxy checks the HTTP proxy an image build points the build VM's
// apt at (`image build --apt-proxy`, the apt_proxy config key) and returns
// it as apt's configuration takes it: SCHEME://HOST[:PORT]/. The URL is
// written into a file in the guest and into the build log, so only a
// strict form is accepted: http or https, a host name, an IPv4 address or
// a bracketed IPv6 address, an optional port, and nothing else (no
// credentials, path, query, spaces or quotes).
func ParseAptProxy(s string) (string, error) {
	if err := checkAptProxy(s); err != nil {
		return "", fmt.Errorf("apt proxy %q: %w; want http://HOST[:PORT] or https://HOST[:PORT], e.g. http://192.168.1.10:3142", s, err)
	}
	scheme, rest, _ := strings.Cut(s, "://")
	return strings.ToLower(scheme) + "://" + strings.TrimSuffix(rest, "/") + "/", nil
}

func checkAptProxy(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	for _, r := range s {
		if r <= ' ' || r > '~' || strings.ContainsRune(`"'\`+"`$;{}<>|", r) {
			return fmt.Errorf("contains %q", r)
		}
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return errors.New("no scheme")
	}
	if sc := strings.ToLower(scheme); sc != "http" && sc != "https" {
		return fmt.Errorf("scheme %s is not http or https", scheme)
	}
	rest = strings.TrimSuffix(rest, "/")
	switch {
	case strings.Contains(rest, "@"):
		return errors.New("credentials are not supported (the URL is written into the build log)")
	case strings.ContainsAny(rest, "/?#"):
		return errors.New("a proxy URL has no path, query or fragment")
	}
	host, port := rest, ""
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 {
			return errors.New("unclosed [ in the host")
		}
		host, port = rest[1:end], rest[end+1:]
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return fmt.Errorf("%q is not an IPv6 address", host)
		}
		if port != "" && !strings.HasPrefix(port, ":") {
			return fmt.Errorf("%q follows the address", port)
		}
		port = strings.TrimPrefix(port, ":")
	} else {
		if strings.Count(rest, ":") > 1 {
			return errors.New("an IPv6 address goes in brackets, e.g. http://[fd00::1]:3142")
		}
		host, port, _ = strings.Cut(rest, ":")
		if !validHost(host) {
			return fmt.Errorf("%q is not a host name or IPv4 address", host)
		}
	}
	if strings.HasSuffix(rest, ":") || port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
	}
	return nil
}

// validHost reports whether h is an IPv4 address or a DNS host name (whose
// last label is not a number).
func validHost(h string) bool {
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Is4()
	}
	if h == "" || len(h) > 253 {
		return false
	}
	labels := strings.Split(strings.TrimSuffix(h, "."), ".")
	if _, err := strconv.Atoi(labels[len(labels)-1]); err == nil {
		return false // a malformed IPv4 address, not a name
	}
	for _, label := range labels {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
