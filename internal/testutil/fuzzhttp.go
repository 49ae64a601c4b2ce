package testutil

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzRequest builds the request an HTTP API fuzz target sends to its
// handler: method, path (with query) and body as the fuzzer gave them. It
// skips the input when they could not reach a server (not an origin-form
// target, not a method token) or when the path names one of skip's words
// (routes that stream forever or touch the host).
func FuzzRequest(t *testing.T, ctx context.Context, method, path string, body []byte, skip ...string) *http.Request {
	t.Helper()
	u, err := url.Parse(path)
	if err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(u.Path, "/") || !methodToken(method) {
		t.Skip("not a request")
	}
	for _, w := range skip {
		if strings.Contains(strings.ToLower(u.Path), w) || strings.Contains(strings.ToLower(u.RawPath), w) {
			t.Skip("route not fuzzed")
		}
	}
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "/", bytes.NewReader(body))
	req.Method, req.URL, req.RequestURI = method, u, u.RequestURI()
	return req
}

// methodToken reports whether m is an HTTP token, as net/http's server
// would accept it for a method.
func methodToken(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return true
}
