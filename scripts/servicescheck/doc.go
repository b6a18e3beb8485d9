// Package servicescheck holds the tests of scripts/services, the script that
// starts the real services integration tests run against. It has no code of
// its own: its tests run the script the way a new clone does.
package servicescheck
