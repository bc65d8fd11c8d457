package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// JSON log mode (-log-json of run and dev): every line the command writes
// on stderr is one JSON object, so a log shipper never meets a line it
// cannot parse. The servers' logs are JSON from zerolog; the command's own
// lines (warnings, errors, "stopping", flag and file problems) go through
// jsonLines, which wraps each plain line as
//
//	{"level":"error","time":"...","message":"the line"}
//
// Lines the command means as information or warnings it writes with
// env.note, at their level.

// jsonOption is implemented by the options of commands with -log-json.
type jsonOption interface {
	commandOptions
	jsonLogs() bool
}

// wantsJSON reports whether args (and the environment) ask o's command for
// JSON logs. It parses them on a throwaway flag set, so that even a
// problem with another flag is reported as JSON.
func wantsJSON(o jsonOption, prog string, args []string) bool {
	fs := o.flagSet(prog)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil && err != flag.ErrHelp {
		// The flags before the bad one were parsed; -log-json may be
		// among them.
		return o.jsonLogs()
	}
	return o.jsonLogs()
}

// useJSON switches e to JSON log mode; the returned func writes what is
// left of an unfinished line.
func (e *env) useJSON(stderr io.Writer) (flush func()) {
	j := &jsonLines{w: stderr}
	e.json = true
	e.stderr = &lockedWriter{w: j}
	return j.flush
}

// note writes one line of the command's own at level lvl: plain text, or
// a JSON object in JSON log mode.
func (e *env) note(lvl zerolog.Level, format string, args ...any) {
	if !e.json {
		fmt.Fprintf(e.stderr, format+"\n", args...)
		return
	}
	l := e.jsonLogger(zerolog.TraceLevel)
	l.WithLevel(lvl).Msg(fmt.Sprintf(format, args...))
}

// jsonLines passes JSON lines through and wraps every other line as a JSON
// object of level error. It is used behind a lockedWriter.
type jsonLines struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func (j *jsonLines) Write(p []byte) (int, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.buf = append(j.buf, p...)
	for {
		i := bytes.IndexByte(j.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := j.buf[:i]
		err := j.writeLine(line)
		j.buf = j.buf[i+1:]
		if err != nil {
			return len(p), err
		}
	}
}

func (j *jsonLines) flush() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(bytes.TrimSpace(j.buf)) > 0 {
		j.writeLine(j.buf)
	}
	j.buf = nil
}

// writeLine writes one line: as it is when it is a JSON object, wrapped
// otherwise. Blank lines are dropped.
func (j *jsonLines) writeLine(line []byte) error {
	t := bytes.TrimSpace(line)
	if len(t) == 0 {
		return nil
	}
	if t[0] == '{' && json.Valid(t) {
		_, err := j.w.Write(append(t, '\n'))
		return err
	}
	b, _ := json.Marshal(struct {
		Level   string `json:"level"`
		Time    string `json:"time"`
		Message string `json:"message"`
	}{"error", time.Now().Format(time.RFC3339Nano), string(bytes.TrimRight(line, "\r"))})
	_, err := j.w.Write(append(b, '\n'))
	return err
}
