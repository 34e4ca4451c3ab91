package kafka

import (
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DecodeTimeout bounds how long decoding one request body may take.
//
// kmsg (v1.15) reads a tagged-field count as a uvarint and loops that many times even
// when the bytes have run out, so a 20-byte flexible request claiming four billion tags
// keeps a core busy for a minute or more. Until that is fixed upstream, flexible bodies
// are decoded on their own goroutine and a decode that overruns closes the connection;
// the stray goroutine ends by itself once its loop runs out.
const DecodeTimeout = time.Second

// ErrDecodeTimeout reports a request whose decoding overran DecodeTimeout.
var ErrDecodeTimeout = errors.New("request decoding took too long")

// DecodeBody decodes b into req (whose version is set), bounded by DecodeTimeout for
// flexible versions.
func DecodeBody(req kmsg.Request, b []byte) error {
	if !req.IsFlexible() {
		return req.ReadFrom(b)
	}
	done := make(chan error, 1)
	go func() { done <- req.ReadFrom(b) }()
	timer := time.NewTimer(DecodeTimeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		return ErrDecodeTimeout
	}
}
