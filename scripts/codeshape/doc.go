// Package codeshape holds a test that keeps the module's functions a reader
// can hold: it parses every non-test, non-generated Go file of the module
// and fails on a function whose body spans more than 120 lines, unless the
// comment directly above the function says why it reads best whole. It has
// no code of its own; `make test` runs it with every package's tests.
package codeshape
