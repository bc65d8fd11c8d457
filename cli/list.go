package cli

import "strings"

// List is a repeatable flag of comma-separated values, for a command's
// flag.FlagSet: "-url a,b -url c" gives [a b c]. Spaces around a value
// and empty values are dropped.
type List []string

func (l *List) String() string { return strings.Join(*l, ",") }

// Set adds the comma-separated values of s.
func (l *List) Set(s string) error {
	for part := range strings.SplitSeq(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}
