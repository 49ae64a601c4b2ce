package firecracker

import (
	"context"
	"io"
	"log/slog"
	"sort"

	"github.com/sirupsen/logrus"
)

// slogHook forwards every logrus entry of the SDK to a slog.Logger at debug
// level, keeping the SDK's level and fields as attributes.
type slogHook struct {
	log *slog.Logger
}

func (h slogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h slogHook) Fire(e *logrus.Entry) error {
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if !h.log.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	keys := make([]string, 0, len(e.Data))
	for k := range e.Data {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys)+1)
	attrs = append(attrs, slog.String("sdk_level", e.Level.String()))
	for _, k := range keys {
		v := e.Data[k]
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		attrs = append(attrs, slog.Any(k, v))
	}
	h.log.LogAttrs(ctx, slog.LevelDebug, e.Message, attrs...)
	return nil
}

// discardFormatter skips formatting: the hook already has the entry, and
// the logger's output is discarded.
type discardFormatter struct{}

func (discardFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

// newSDKLogger returns a logrus entry for the SDK whose output lands in log
// at debug level, tagged with the VM id.
func newSDKLogger(log *slog.Logger, vmID string) *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetFormatter(discardFormatter{})
	l.SetLevel(logrus.InfoLevel)
	if log.Enabled(context.Background(), slog.LevelDebug) {
		l.SetLevel(logrus.DebugLevel)
	}
	l.AddHook(slogHook{log: log.With("component", "firecracker-sdk")})
	if vmID == "" {
		return logrus.NewEntry(l)
	}
	return l.WithField("vm", vmID)
}
