package kafka

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DecodeBody decodes b into req (whose version is set).
//
// Decoding runs on the caller's goroutine: its cost is bounded by len(b). kmsg v1.15
// looped over a tagged-field count read from the wire even after the bytes had run
// out, so a 25-byte frame claiming 2^32-1 tags kept a core busy for many seconds;
// go.mod replaces kmsg with third_party/kmsg, whose tag loops stop once the reader has
// failed (third_party/kmsg/PATCH.md). Every array count is checked against the bytes
// left before kmsg allocates for it, so neither work nor memory can outgrow the frame
// by more than a constant factor (TestDecodeCostBoundedBySize, FuzzDecodeCost).
func DecodeBody(req kmsg.Request, b []byte) error {
	return req.ReadFrom(b)
}
