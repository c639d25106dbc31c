package par

import (
	"errors"
	"sync/atomic"
	"testing"
)

func TestEach(t *testing.T) {
	for _, n := range []int{0, 1, 3, 50} {
		var ran atomic.Int64
		items := make([]int, 20)
		for i := range items {
			items[i] = i
		}
		err := Each(n, items, func(i int) error {
			ran.Add(1)
			if i%7 == 3 {
				return errors.New("failed")
			}
			return nil
		})
		if err == nil || err.Error() != "failed" {
			t.Errorf("n=%d: err = %v, want the items' error", n, err)
		}
		if ran.Load() != 20 {
			t.Errorf("n=%d: %d of 20 items ran; an error must not leave the others undone", n, ran.Load())
		}
		if err := Each(n, []int{}, func(int) error { return errors.New("no") }); err != nil {
			t.Errorf("n=%d: no items gave %v", n, err)
		}
	}
}
