package run

import (
	"errors"
	"fmt"

	"smelt/internal/store"
)

// damage handles a damaged store entry that err reports, if it does: the
// entry is already dropped; here every result built from it is dropped
// too, so that the next pass builds them again, with one warning. It
// reports whether err was such damage, and then whether any result was
// dropped: if none was, another pass would only meet it again.
func (e *engine) damage(err error) bool {
	var d *store.DamageError
	if !errors.As(err, &d) {
		return false
	}
	n, derr := e.p.st.DropUsers(d)
	msg := d.Error()
	e.mu.Lock()
	if e.warned == nil {
		e.warned = map[string]bool{}
	}
	first := !e.warned[msg]
	e.warned[msg] = true
	// Steps that restore the same target/ at once meet the same damage:
	// the first drops the results, the others find none left to drop,
	// yet the next pass rebuilds what they need.
	dropped := e.dropped
	e.dropped = e.dropped || n > 0
	e.mu.Unlock()
	if derr != nil {
		e.p.st.Warnf("%s: %v", msg, derr)
		return false
	}
	if first {
		e.p.st.Warnf("%s; dropped it and the %s that used it, to build again", msg, plural(n, "result"))
	}
	return n > 0 || !first || dropped
}

// signature is what the observer was told of a report.
func (r *StepReport) signature() string {
	var key store.Key
	if r.Result != nil {
		key = r.Result.Key
	}
	return fmt.Sprintf("%d %s %s", r.Status, key, r.Reason)
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
