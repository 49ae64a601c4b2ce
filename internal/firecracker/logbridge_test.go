package firecracker

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// recordHandler keeps the records it handles, attributes flattened.
type recordHandler struct {
	level slog.Level
	attrs []slog.Attr
	out   *[]map[string]string
}

func (h *recordHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *recordHandler) WithGroup(string) slog.Handler                { return h }
func (h *recordHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &recordHandler{level: h.level, attrs: append(append([]slog.Attr(nil), h.attrs...), as...), out: h.out}
}
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"level": r.Level.String(), "msg": r.Message}
	for _, a := range h.attrs {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	*h.out = append(*h.out, m)
	return nil
}

func TestSDKLoggerBridgesToSlogDebug(t *testing.T) {
	var got []map[string]string
	log := slog.New(&recordHandler{level: slog.LevelDebug, out: &got})
	e := newSDKLogger(log, "vm1")
	e.WithField("drive", "rootfs").WithError(errors.New("boom")).Warn("attaching drive")
	e.Debugf("socket %s ready", "/s")
	want := []map[string]string{{
		"level": "DEBUG", "msg": "attaching drive", "component": "firecracker-sdk",
		"sdk_level": "warning", "vm": "vm1", "drive": "rootfs", "error": "boom",
	}, {
		"level": "DEBUG", "msg": "socket /s ready", "component": "firecracker-sdk",
		"sdk_level": "debug", "vm": "vm1",
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("slog records (-want +got):\n%s", diff)
	}

	got = nil
	quiet := newSDKLogger(slog.New(&recordHandler{level: slog.LevelInfo, out: &got}), "vm1")
	quiet.Error("not forwarded above debug")
	if len(got) != 0 {
		t.Errorf("records at info level: %v", got)
	}
}
