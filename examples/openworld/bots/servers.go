package bots

import (
	"context"
	"math/rand/v2"
	"slices"

	"github.com/cloudrift/cloudrift/client"
)

// servers returns the client servers bot i tries, in order: with a
// directory, the less loaded of two of its servers drawn at random, then
// its others least loaded first; then the configured URLs from the bot's
// own. avoid (the server being left) is not listed. A directory that
// cannot be read is skipped.
func (s *Swarm) servers(ctx context.Context, rng *rand.Rand, i int, avoid string) []string {
	var out []string
	if s.Directory != "" {
		timeout := s.Dial.DialTimeout
		if timeout <= 0 {
			timeout = client.DefaultDialTimeout
		}
		dctx, cancel := context.WithTimeout(ctx, timeout)
		d, err := client.FetchDirectory(dctx, nil, s.Directory)
		cancel()
		if err == nil {
			out = twoChoices(rng, slices.DeleteFunc(d.URLs(), func(u string) bool { return u == avoid }))
		}
	}
	if n := len(s.URLs); n > 0 {
		out = appendNew(out, s.URLs[i%n:]...)
		out = appendNew(out, s.URLs[:i%n]...)
	}
	return slices.DeleteFunc(out, func(u string) bool { return u == avoid })
}

// twoChoices moves the less loaded of two servers drawn at random from
// urls (least loaded first) to the front: many players joining at once
// spread over the lightly loaded servers instead of all landing on the
// one the directory listed first.
func twoChoices(rng *rand.Rand, urls []string) []string {
	if len(urls) < 2 {
		return urls
	}
	a, b := rng.IntN(len(urls)), rng.IntN(len(urls))
	pick := min(a, b)
	return append([]string{urls[pick]}, slices.Delete(slices.Clone(urls), pick, pick+1)...)
}

// appendNew appends the URLs of add that dst does not hold yet.
func appendNew(dst []string, add ...string) []string {
	for _, u := range add {
		if !slices.Contains(dst, u) {
			dst = append(dst, u)
		}
	}
	return dst
}
