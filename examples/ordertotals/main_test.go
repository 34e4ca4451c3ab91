package main

import (
	"testing"

	"github.com/strand-data/strand/stream"
	"github.com/strand-data/strand/stream/streamtest"
)

func TestOrderTotals(t *testing.T) {
	d := streamtest.New(t, Topology(), streamtest.AppID("ordertotals"), streamtest.Partitions("orders", 6))
	in := streamtest.NewInput(d, "orders", stream.String(), stream.JSON[Order]())
	out := streamtest.NewOutput(d, "order-totals", stream.String(), stream.JSON[Totals]())
	in.Pipe("c1", Order{OrderID: "o1", Amount: 10.5})
	in.Pipe("c2", Order{OrderID: "o2", Amount: 3})
	in.Pipe("c1", Order{OrderID: "o3", Amount: 4.5})
	latest := out.Latest()
	if latest["c1"] != (Totals{Count: 2, Total: 15}) || latest["c2"] != (Totals{Count: 1, Total: 3}) {
		t.Errorf("order-totals = %+v", latest)
	}
	if n := len(d.Records("ordertotals-totals-changelog")); n != 3 {
		t.Errorf("changelog has %d records, want 3", n)
	}
}
