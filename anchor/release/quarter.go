package release

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Quarter is a calendar quarter, Q1 = January to March.
type Quarter struct {
	Year int
	N    int // 1..4
}

var quarterRe = regexp.MustCompile(`^(\d{4})-Q([1-4])$`)

// ParseQuarter reads "YYYY-QN".
func ParseQuarter(s string) (Quarter, error) {
	m := quarterRe.FindStringSubmatch(s)
	if m == nil {
		return Quarter{}, fmt.Errorf("quarter %q: want YYYY-QN, e.g. 2026-Q3", s)
	}
	y, _ := strconv.Atoi(m[1])
	n, _ := strconv.Atoi(m[2])
	return Quarter{Year: y, N: n}, nil
}

func (q Quarter) String() string { return fmt.Sprintf("%04d-Q%d", q.Year, q.N) }

// Start is the quarter's first instant, UTC.
func (q Quarter) Start() time.Time {
	return time.Date(q.Year, time.Month(3*(q.N-1)+1), 1, 0, 0, 0, 0, time.UTC)
}

// End is the quarter's last whole second, UTC (2026-03-31T23:59:59Z).
func (q Quarter) End() time.Time { return q.Next().Start().Add(-time.Second) }

// Next is the following quarter.
func (q Quarter) Next() Quarter {
	if q.N == 4 {
		return Quarter{Year: q.Year + 1, N: 1}
	}
	return Quarter{Year: q.Year, N: q.N + 1}
}

// Prev is the quarter before.
func (q Quarter) Prev() Quarter {
	if q.N == 1 {
		return Quarter{Year: q.Year - 1, N: 4}
	}
	return Quarter{Year: q.Year, N: q.N - 1}
}

// QuarterOf is the quarter holding t (in UTC).
func QuarterOf(t time.Time) Quarter {
	t = t.UTC()
	return Quarter{Year: t.Year(), N: (int(t.Month())-1)/3 + 1}
}

// LastEnded is the default quarter to release at now: the last quarter that
// has ended (in UTC). The scheduled run at 09:00 on the first day of a
// quarter therefore bundles the quarter that just ended, whose report
// exists, not the one just begun (the old script's bug).
func LastEnded(now time.Time) Quarter { return QuarterOf(now).Prev() }
