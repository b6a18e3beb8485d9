package core

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetric registers c on reg and returns it. When a collector of the
// same identity is already registered (the runtime reopens one Source value
// after every error, so a connector's Open runs again in one process) it
// returns that one instead, so that counts carry on where they were. It
// returns c and an error when c clashes with a different collector of the
// same name; c then counts unexported. A nil reg registers nothing.
func RegisterMetric[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if reg == nil {
		return c, nil
	}
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register metrics: %w", err)
}

// ReplaceMetric registers c on reg, first unregistering a collector of the
// same identity that an earlier session left: for gauge functions, which
// read the current session's state. A nil reg registers nothing.
func ReplaceMetric(reg prometheus.Registerer, c prometheus.Collector) error {
	if reg == nil {
		return nil
	}
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		reg.Unregister(are.ExistingCollector)
		err = reg.Register(c)
	}
	if err != nil {
		return fmt.Errorf("register metrics: %w", err)
	}
	return nil
}
