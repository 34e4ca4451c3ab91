package compat

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// pollUntilStopped polls a group member in rounds of at most round until stop closes,
// handing each round's fetches to each; wg waits for the polling goroutine.
func pollUntilStopped(ctx context.Context, wg *sync.WaitGroup, stop <-chan struct{}, cl *kgo.Client, round time.Duration, each func(kgo.Fetches)) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			pctx, cancel := context.WithTimeout(ctx, round)
			f := cl.PollFetches(pctx)
			cancel()
			each(f)
		}
	}()
}
