package embedded

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"time"
)

// leaseReq takes, renews (hold) or gives up (!hold) a consumer group's
// lease on a topic, which says which process reads for the group.
type leaseReq struct {
	key  offsetKey
	hold bool
	got  bool // set by the writer: the lease is ours until the TTL
}

// leaseTTL is how long a consumer group's lease lasts without renewal: how
// long a group waits for a process that died while reading.
const leaseTTL = 15 * time.Second

func newOwner() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%d-%x", os.Getpid(), b)
}

// writeLease takes, renews or drops a lease inside the writer's transaction.
func (st *store) writeLease(ctx context.Context, l *leaseReq) error {
	if !l.hold {
		if _, err := st.dropLease.ExecContext(ctx, l.key.group, l.key.topic, st.owner); err != nil {
			return fmt.Errorf("release lease of group %q on topic %q: %w", l.key.group, l.key.topic, err)
		}
		return nil
	}
	now := time.Now()
	res, err := st.takeLease.ExecContext(ctx, l.key.group, l.key.topic, st.owner, now.Add(leaseTTL).UnixNano(), now.UnixNano())
	if err != nil {
		return fmt.Errorf("take lease of group %q on topic %q: %w", l.key.group, l.key.topic, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("take lease of group %q on topic %q: %w", l.key.group, l.key.topic, err)
	}
	l.got = n > 0
	return nil
}

// lease takes or renews (hold) or releases a group's lease, and reports
// whether this store holds it.
func (st *store) lease(ctx context.Context, key offsetKey, hold bool) (bool, error) {
	l := &leaseReq{key: key, hold: hold}
	errc := make(chan error, 1)
	if err := st.enqueue(ctx, &op{lease: l, done: func(err error) { errc <- err }}); err != nil {
		return false, err
	}
	select {
	case err := <-errc:
		return l.got, err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}
