package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
)

// maxLogLine bounds one forwarded stderr line; the rest of a longer line is
// dropped.
const maxLogLine = 64 << 10

// logWriter forwards a plugin's stderr to a slog logger line by line. A
// line that is a JSON object with a message (slog's "msg" or hclog's
// "@message") keeps its level and attributes; any other line is logged as
// is at info level. It is safe for concurrent use.
type logWriter struct {
	log *slog.Logger

	mu   sync.Mutex
	buf  []byte
	skip bool // inside a line longer than maxLogLine
}

func newLogWriter(log *slog.Logger) *logWriter { return &logWriter{log: log} }

// Write buffers p and logs every complete line.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.add(p)
			break
		}
		w.add(p[:i])
		if !w.skip || len(w.buf) > 0 {
			w.emit(w.buf)
		}
		w.buf, w.skip = w.buf[:0], false
		p = p[i+1:]
	}
	return n, nil
}

// Flush logs a last line without a newline.
func (w *logWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
}

func (w *logWriter) add(p []byte) {
	if room := maxLogLine - len(w.buf); len(p) > room {
		p, w.skip = p[:max(room, 0)], true
	}
	w.buf = append(w.buf, p...)
}

func (w *logWriter) emit(line []byte) {
	line = bytes.TrimRight(line, "\r ")
	if len(bytes.TrimSpace(line)) == 0 {
		return
	}
	if line[0] == '{' {
		var rec map[string]any
		if json.Unmarshal(line, &rec) == nil {
			if msg, level, attrs, ok := structured(rec); ok {
				w.log.Log(context.Background(), level, msg, attrs...)
				return
			}
		}
	}
	w.log.Info(string(line))
}

// structured reads a slog or hclog JSON record.
func structured(rec map[string]any) (msg string, level slog.Level, attrs []any, ok bool) {
	msg, ok = rec["msg"].(string)
	if !ok {
		if msg, ok = rec["@message"].(string); !ok {
			return "", 0, nil, false
		}
	}
	lv, _ := rec["level"].(string)
	if lv == "" {
		lv, _ = rec["@level"].(string)
	}
	level = parseLevel(lv)
	for k, v := range rec {
		switch k {
		case "msg", "@message", "level", "@level", "time", "@timestamp":
			continue
		}
		attrs = append(attrs, slog.Any(strings.TrimPrefix(k, "@"), v))
	}
	return msg, level, attrs, true
}

func parseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "trace", "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error", "fatal", "critical":
		return slog.LevelError
	}
	return slog.LevelInfo
}
