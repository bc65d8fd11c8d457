package yamlx

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
)

var yamlLine = regexp.MustCompile(`^line (\d+): `)

// parserProblems are the messages of yaml.v3's parser (as opposed to its
// scanner). yaml.v3 v3.0.1 prints a parser error's line 0-based (and it is
// the line where the enclosing block starts when that is not the first
// line), and prints no line at all for a problem on the first line.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

var unknownAnchor = regexp.MustCompile(`^unknown anchor '(.*)' referenced$`)

// SyntaxError turns a yaml.v3 parse error of data ("yaml: line 3: ...")
// into a 1-based line and the message without its prefixes.
func SyntaxError(err error, data []byte) (line int, msg string) {
	msg = strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	switch {
	case parserProblems[msg]:
		line++
	case unknownAnchor.MatchString(msg):
		// The composer names no line: find the first use of the alias.
		name := unknownAnchor.FindStringSubmatch(msg)[1]
		if i := bytes.Index(data, []byte("*"+name)); i >= 0 {
			line = bytes.Count(data[:i], []byte("\n")) + 1
		}
	case line == 0:
		line = 1 // a scanner problem on the first line
	}
	return line, msg
}
