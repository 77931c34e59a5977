package plan

import (
	"strconv"
	"unicode/utf8"
)

// MaxReason is the most bytes a decision record keeps of a text a policy
// controls: the decision's reason and the error of a failed evaluation.
// A record is logged on every tick, committed through raft and served
// many at a time by the API; a policy returning a reason of a megabyte
// must not make each of them a megabyte (issue 17). A longer text is cut
// by CutText.
const MaxReason = 2 << 10

// CutText returns s when it has at most limit bytes. Otherwise it returns
// the longest prefix of s that ends on a UTF-8 boundary and, followed by
// the marker " … [cut: N bytes]" (N is len(s)), fits in limit bytes; the
// result is never longer than limit (only the marker, itself cut, when
// limit is smaller than it).
func CutText(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	limit = max(limit, 0)
	marker := " … [cut: " + strconv.Itoa(len(s)) + " bytes]"
	if len(marker) >= limit {
		return validPrefix(marker, limit)
	}
	return validPrefix(s, limit-len(marker)) + marker
}

// validPrefix is the longest prefix of s of at most n bytes that does not
// end inside a UTF-8 sequence.
func validPrefix(s string, n int) string {
	if len(s) <= n {
		return s
	}
	i := n
	// Back off over continuation bytes to the start of the rune at n.
	for i > 0 && i > n-utf8.UTFMax && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
