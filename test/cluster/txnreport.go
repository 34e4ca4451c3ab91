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
	for _, c := range r.checks() {
		*c.found = c.check(h)
	}
	return r
}

// txnCheck is one check of CheckTxn: its short name, what its anomalies are (for
// Problems), the report field it fills.
type txnCheck struct {
	name, what string
	check      func(*TxnHistory) []TxnAnomaly
	found      *[]TxnAnomaly
}

// checks lists every transactional check, in the order Problems reports them.
func (r *TxnReport) checks() []txnCheck {
	return []txnCheck{
		{"phantoms", "records read or sent that make the history ambiguous", TxnPhantoms, &r.Phantoms},
		{"lost", "committed records lost", LostCommitted, &r.Lost},
		{"duplicates", "duplicates", TxnDuplicates, &r.Duplicates},
		{"aborted reads", "aborted reads", AbortedReads, &r.AbortedReads},
		{"partial", "transactions a read_committed consumer saw partially", PartialReads, &r.Partial},
		{"order", "records out of their transaction's order", TxnOrder, &r.Order},
		{"late", "late writes (a record after its producer's next transaction or its own marker)", LateWrites, &r.Late},
		{"indeterminate", "indeterminate transactions resolved partially", IndeterminateTxns, &r.Indeterminate},
		{"chain", "chain input records not in the last topic exactly once, in key order", ChainExactlyOnce, &r.Chain},
	}
}

// Problems describes every failed check, with a few examples each; empty means all held.
func (r TxnReport) Problems() []string {
	var out []string
	for _, c := range r.checks() {
		out = appendProblem(out, c.what, *c.found)
	}
	if r.Committed == 0 {
		out = append(out, "no transaction committed")
	}
	return out
}

// Row is the report as one line of the table under TxnTableHeader.
func (r TxnReport) Row() string {
	return fmt.Sprintf("%-28s | %14d | %7d | %7d | %4d | %4d | %13d | %7d | %5d | %4d | %6d | %5d",
		r.Scenario, r.Committed, r.Aborted, r.Unknown, len(r.Lost), len(r.Duplicates), len(r.AbortedReads),
		len(r.Partial), len(r.Order), len(r.Late), len(r.Indeterminate), len(r.Chain))
}

// TxnTableHeader heads the rows of TxnReport.Row.
const TxnTableHeader = "scenario                     | txns committed | aborted | unknown | lost | dups | aborted reads | partial | order | late | indet. | chain"
