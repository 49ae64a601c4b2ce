package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path"
	"strings"
	"sync"
	"testing"
	"time"
)

// mirrorProxy is the Debian mirror inside a test's network namespace: an
// HTTP forward proxy for apt that serves GET and HEAD of absolute http://
// URLs under the allowed mirrors (their host, port 80, below their path)
// and refuses everything else with 403, so a guest reaches apt's archive
// and nothing more. The test process dials the mirror from the host's
// namespace; nothing on the host (routes, forwarding, firewall) changes.
type mirrorProxy struct {
	mirrors   []*url.URL
	transport *http.Transport

	mu      sync.Mutex
	served  int
	bytes   int64
	refused []string
}

// newMirrorProxy allows the http:// mirror URLs given, e.g.
// http://deb.debian.org/debian.
func newMirrorProxy(mirrors ...string) (*mirrorProxy, error) {
	p := &mirrorProxy{transport: &http.Transport{
		Proxy:                 nil, // straight to the mirror, whatever the environment says
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second}).DialContext,
		ResponseHeaderTimeout: time.Minute,
		DisableCompression:    true, // hand apt the bytes the mirror sent
		MaxIdleConnsPerHost:   4,
	}}
	for _, m := range mirrors {
		u, err := url.Parse(m)
		if err != nil || u.Scheme != "http" || u.Host == "" || (u.Port() != "" && u.Port() != "80") {
			return nil, fmt.Errorf("mirror %q: the proxy serves plain http:// mirrors on port 80 only", m)
		}
		u.Path = strings.TrimSuffix(u.Path, "/") + "/"
		p.mirrors = append(p.mirrors, u)
	}
	return p, nil
}

// refusal says why r is not apt fetching from an allowed mirror, or "".
func (p *mirrorProxy) refusal(r *http.Request) string {
	u := r.URL
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		return "method " + r.Method + " (apt traffic only: GET and HEAD)"
	case u.Scheme != "http" || u.Host == "":
		return "not an absolute http:// URL"
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "credentials, query or fragment in the URL"
	case u.Port() != "" && u.Port() != "80":
		return "port " + u.Port() + " (mirrors are served on port 80)"
	}
	clean := path.Clean(u.Path)
	if strings.HasSuffix(u.Path, "/") {
		clean += "/"
	}
	for _, m := range p.mirrors {
		if strings.EqualFold(u.Hostname(), m.Hostname()) && clean == u.Path && strings.HasPrefix(clean, m.Path) {
			return ""
		}
	}
	return "not below a Debian mirror of the image: " + u.Hostname() + u.Path
}

func (p *mirrorProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if why := p.refusal(r); why != "" {
		p.mu.Lock()
		p.refused = append(p.refused, r.Method+" "+r.URL.String()+": "+why)
		p.mu.Unlock()
		http.Error(w, "refused by the banger test's apt proxy: "+why, http.StatusForbidden)
		return
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), nil)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, h := range []string{"Accept", "Cache-Control", "If-Modified-Since", "If-None-Match", "If-Range", "Range", "User-Agent"} {
		if v := r.Header.Values(h); len(v) > 0 {
			out.Header[h] = v
		}
	}
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		http.Error(w, "fetching from the mirror: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		switch http.CanonicalHeaderKey(k) {
		case "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		default:
			w.Header()[k] = v
		}
	}
	w.WriteHeader(resp.StatusCode)
	n, _ := io.Copy(w, resp.Body)
	p.mu.Lock()
	p.served++
	p.bytes += n
	p.mu.Unlock()
}

// Served is how many requests the proxy passed to a mirror.
func (p *mirrorProxy) Served() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served
}

// Summary counts what the proxy did.
func (p *mirrorProxy) Summary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := fmt.Sprintf("%d requests served (%.1f MiB), %d refused", p.served, float64(p.bytes)/(1<<20), len(p.refused))
	for i, r := range p.refused {
		if i == 5 {
			s += fmt.Sprintf("\n  … %d more", len(p.refused)-i)
			break
		}
		s += "\n  refused " + r
	}
	return s
}

// probe checks, from the host's namespace, that the mirror serves suite's
// Release file.
func (p *mirrorProxy) probe(suite string) error {
	m := p.mirrors[0]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, m.String()+"dists/"+suite+"/Release", nil)
	if err != nil {
		return err
	}
	resp, err := p.transport.RoundTrip(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// proxyAddr is the address the mirror proxy listens on inside a test's
// namespace: a TEST-NET address (RFC 2544) on the namespace's loopback,
// which the guests reach through their default route, the bridge.
const proxyAddr = "198.18.0.1"

// serveMirrorProxy runs p inside the test's network namespace and returns
// its URL as guests use it. Its listening socket is made in the namespace;
// the connections to the mirror are dialled from the test process's own.
// Everything closes when the test ends.
func (e *env) serveMirrorProxy(p *mirrorProxy) string {
	e.t.Helper()
	if out, err := exec.Command("ip", "netns", "exec", e.netns, "ip", "addr", "add", proxyAddr+"/32", "dev", "lo").CombinedOutput(); err != nil {
		e.t.Fatalf("adding %s to the namespace's loopback: %v: %s", proxyAddr, err, out)
	}
	var l net.Listener
	var err error
	e.inNetns(func() { l, err = net.Listen("tcp", proxyAddr+":0") })
	if err != nil {
		e.t.Fatalf("listening in the test's namespace: %v", err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 30 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	e.t.Cleanup(func() {
		srv.Close()
		<-done
		p.transport.CloseIdleConnections()
	})
	return "http://" + l.Addr().String()
}

// TestMirrorProxyRefusesAllButApt checks the proxy's allowlist without any
// network: nothing refused is fetched.
func TestMirrorProxyRefusesAllButApt(t *testing.T) {
	p, err := newMirrorProxy("http://deb.debian.org/debian")
	if err != nil {
		t.Fatal(err)
	}
	p.transport.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		t.Errorf("a refused request dialled %s", addr)
		return nil, errors.New("no network in this test")
	}
	for _, tc := range []struct{ method, target string }{
		{http.MethodConnect, "deb.debian.org:443"},
		{http.MethodPost, "http://deb.debian.org/debian/dists/bookworm/InRelease"},
		{http.MethodGet, "/debian/dists/bookworm/InRelease"},
		{http.MethodGet, "http://example.com/debian/dists/bookworm/InRelease"},
		{http.MethodGet, "http://deb.debian.org:8080/debian/dists/bookworm/InRelease"},
		{http.MethodGet, "http://deb.debian.org/debian-security/dists/bookworm-security/InRelease"},
		{http.MethodGet, "http://deb.debian.org/debian/../etc/passwd"},
		{http.MethodGet, "http://deb.debian.org/debian/dists/?q=1"},
		{http.MethodGet, "http://user@deb.debian.org/debian/dists/bookworm/InRelease"},
		{http.MethodGet, "https://deb.debian.org/debian/dists/bookworm/InRelease"},
		{http.MethodGet, "http://169.254.169.254/latest/meta-data/"},
	} {
		r := httptest.NewRequest(tc.method, tc.target, nil)
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		if w.Code != http.StatusForbidden {
			t.Errorf("%s %s: %d, want 403", tc.method, tc.target, w.Code)
		}
	}
	for _, ok := range []string{"http://deb.debian.org/debian/dists/bookworm/InRelease", "http://DEB.debian.org:80/debian/pool/main/j/jq/jq_1.6-2.1_amd64.deb"} {
		if why := p.refusal(httptest.NewRequest(http.MethodGet, ok, nil)); why != "" {
			t.Errorf("GET %s refused: %s", ok, why)
		}
	}
	if _, err := newMirrorProxy("https://deb.debian.org/debian"); err == nil {
		t.Error("an https mirror accepted (the proxy cannot serve it without CONNECT)")
	}
}
