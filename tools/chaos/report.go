package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"
)

// printTable writes the figures of every event as a Markdown table.
func printTable(w io.Writer, stats []*eventStats) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	fmt.Fprintln(tw, "| event\t| disruption\t| dropped (not hit)\t| dropped (hit)\t| back p50\t| back p99\t| rows lost\t| consistent after\t| invariants\t|")
	fmt.Fprintln(tw, "|---\t|---\t|---\t|---\t|---\t|---\t|---\t|---\t|---\t|")
	for _, ev := range stats {
		p50, p99 := "-", "-"
		if len(ev.back) > 0 {
			p50, p99 = round(quantile(ev.back, 0.50)).String(), round(quantile(ev.back, 0.99)).String()
		}
		verdict := "held"
		if ev.violation != "" {
			verdict = "VIOLATED"
		}
		fmt.Fprintf(tw, "| %s\t| %v\t| %d\t| %d\t| %s\t| %s\t| %d\t| %v\t| %s\t|\n",
			ev.name, round(ev.took), ev.drops, ev.hitDrops, p50, p99, ev.rowsLost, round(ev.settle), verdict)
	}
	tw.Flush()
}

// quantile returns the q-quantile of ds (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}
