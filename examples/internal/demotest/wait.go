package demotest

import (
	"regexp"
	"strconv"
)

// CountAbove reports whether re matches somewhere in out with its first
// capturing group a decimal number above zero: for a line such as
// "42 tasks done" in a command's output. re must have a capturing group.
func CountAbove(re *regexp.Regexp, out string) bool {
	for _, m := range re.FindAllStringSubmatch(out, -1) {
		if n, err := strconv.ParseUint(m[1], 10, 64); err == nil && n > 0 {
			return true
		}
	}
	return false
}
