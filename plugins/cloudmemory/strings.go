package cloudmemory

import (
	"sync"

	"github.com/cloudrift/cloudrift/protocol/cloudwire"
)

// stringsPool lends cloudwire.Strings to the decoders of frames, which
// run on many goroutines at once (each link's read loop, each game
// client's session). Every operation repeats the same few keys,
// uploaders and addresses; a decoder that borrows a Strings gets them
// without a new copy each. The zero value is ready.
type stringsPool struct{ p sync.Pool }

// get borrows a Strings; give it back with put once the decode is done.
func (sp *stringsPool) get() *cloudwire.Strings {
	if s, ok := sp.p.Get().(*cloudwire.Strings); ok {
		return s
	}
	return new(cloudwire.Strings)
}

func (sp *stringsPool) put(s *cloudwire.Strings) { sp.p.Put(s) }

// decodeWith decodes b into m with strings borrowed from sp.
func decodeWith[M interface {
	DecodeWith(b []byte, s *cloudwire.Strings) error
}](sp *stringsPool, m M, b []byte) error {
	s := sp.get()
	err := m.DecodeWith(b, s)
	sp.put(s)
	return err
}
