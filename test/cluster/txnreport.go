package cluster

import "fmt"

// TxnReport is every transactional check's outcome for one scenario: the row issue 13's
// note carries per scenario.
type TxnReport struct {
	Scenario                    string
	Committed, Aborted, Unknown int // transactions, by how their producers saw them end
	Records                     int // records of the final read
	ChainInputs                 int // records of the chain's input the final read found

	Lost          []TxnAnomaly
	Duplicates    []TxnAnomaly
	AbortedReads  []TxnAnomaly
	Partial       []TxnAnomaly
	Order         []TxnAnomaly
	Late          []TxnAnomaly
	Indeterminate []TxnAnomaly
	Phantoms      []TxnAnomaly
	Chain         []TxnAnomaly
}

// CheckTxn runs every transactional check over h.
func CheckTxn(scenario string, h *TxnHistory) TxnReport {
	r := TxnReport{Scenario: scenario, Records: len(h.Final), ChainInputs: chainLength(h)}
	for _, t := range h.Txns {
		if t.Producer == "" {
			continue // a plain write
		}
		switch t.Outcome {
		case TxnCommitted:
			r.Committed++
		case TxnAborted:
			r.Aborted++
		default:
			r.Unknown++
		}
	}
	r.Lost = LostCommitted(h)
	r.Duplicates = TxnDuplicates(h)
	r.AbortedReads = AbortedReads(h)
	r.Partial = PartialReads(h)
	r.Order = TxnOrder(h)
	r.Late = LateWrites(h)
	r.Indeterminate = IndeterminateTxns(h)
	r.Phantoms = TxnPhantoms(h)
	r.Chain = ChainExactlyOnce(h)
	return r
}

// Problems describes every failed check, with a few examples each; empty means all held.
func (r TxnReport) Problems() []string {
	var out []string
	out = appendProblem(out, "records read or sent that make the history ambiguous", r.Phantoms)
	out = appendProblem(out, "committed records lost", r.Lost)
	out = appendProblem(out, "duplicates", r.Duplicates)
	out = appendProblem(out, "aborted reads", r.AbortedReads)
	out = appendProblem(out, "transactions a read_committed consumer saw partially", r.Partial)
	out = appendProblem(out, "records out of their transaction's order", r.Order)
	out = appendProblem(out, "late writes (a record after its producer's next transaction or its own marker)", r.Late)
	out = appendProblem(out, "indeterminate transactions resolved partially", r.Indeterminate)
	out = appendProblem(out, "chain input records not in the last topic exactly once, in key order", r.Chain)
	if r.Committed == 0 {
		out = append(out, "no transaction committed")
	}
	return out
}

// Row is the report as one line of the table under TxnTableHeader.
func (r TxnReport) Row() string {
	return fmt.Sprintf("%-28s | %6d | %5d | %5d | %4d | %4d | %7d | %7d | %5d | %4d | %6d | %5d",
		r.Scenario, r.Committed, r.Aborted, r.Unknown, len(r.Lost), len(r.Duplicates), len(r.AbortedReads),
		len(r.Partial), len(r.Order), len(r.Late), len(r.Indeterminate), len(r.Chain))
}

// TxnTableHeader heads the rows of TxnReport.Row.
const TxnTableHeader = "scenario                     | commit | abort | unkn. | lost | dups | ab.read | partial | order | late | indet. | chain"
