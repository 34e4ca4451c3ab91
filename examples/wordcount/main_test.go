package main

import (
	"testing"

	"github.com/strand-data/strand/stream"
	"github.com/strand-data/strand/stream/streamtest"
)

func TestWordCount(t *testing.T) {
	d := streamtest.New(t, Topology(), streamtest.AppID("wordcount"), streamtest.Partitions("text", 6))
	in := streamtest.NewInput(d, "text", stream.Bytes(), stream.String())
	in.Pipe(nil, "To be, or not to be")
	in.Pipe(nil, "that is the question")
	latest := streamtest.NewOutput(d, "word-counts", stream.String(), stream.Int64()).Latest()
	want := map[string]int64{"to": 2, "be": 2, "or": 1, "not": 1, "that": 1, "is": 1, "the": 1, "question": 1}
	if len(latest) != len(want) {
		t.Errorf("got %d words %v, want %d", len(latest), latest, len(want))
	}
	for w, n := range want {
		if latest[w] != n {
			t.Errorf("%s = %d, want %d", w, latest[w], n)
		}
	}
	if n := len(d.Records("wordcount-words-repartition")); n != 10 {
		t.Errorf("repartition topic has %d records, want 10", n)
	}
}
