package sql

import (
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// redaction stands in for a hidden value.
const redaction = "REDACTED"

// passwordParam finds the password of a key=value connection string
// (PostgreSQL's "password=...", SQL Server's "password=...;" or "pwd=").
var passwordParam = regexp.MustCompile(`(?i)\b(?:password|pwd)\s*=\s*('(?:[^'\\]|\\.)*'|"[^"]*"|[^\s;]+)`)

// dsnSecrets returns what an error must not quote of dsn: the whole
// connection string (a driver that cannot parse it quotes it, as go-ora
// does) and its password in every form it may take, longest first.
func dsnSecrets(dsn string) []string {
	var pws []string
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		pw, _ := u.User.Password()
		pws = append(pws, pw)
	}
	if c, err := mysql.ParseDSN(dsn); err == nil {
		pws = append(pws, c.Passwd)
	}
	// A URL that does not parse still has its user info before the last
	// '@' of the authority.
	rest := dsn
	if _, after, ok := strings.Cut(dsn, "://"); ok {
		rest = after
	}
	if end := strings.IndexAny(rest, "/?"); end >= 0 && strings.Contains(rest[:end], "@") {
		rest = rest[:end]
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		if _, pw, ok := strings.Cut(rest[:at], ":"); ok {
			pws = append(pws, pw)
			if un, err := url.PathUnescape(pw); err == nil {
				pws = append(pws, un)
			}
		}
	}
	for _, m := range passwordParam.FindAllStringSubmatch(dsn, -1) {
		pws = append(pws, m[1], strings.Trim(m[1], `'"`))
	}
	out := []string{dsn}
	for _, pw := range pws {
		if pw != "" && !slices.Contains(out, pw) {
			out = append(out, pw)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// hiddenError is an error whose message has the connection string's
// secrets replaced; errors.Is and errors.As see the original.
type hiddenError struct {
	msg string
	err error
}

func (e *hiddenError) Error() string { return e.msg }
func (e *hiddenError) Unwrap() error { return e.err }

// hide returns err with none of secrets in its message, or err itself when
// it quotes none.
func hide(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, s := range secrets {
		clean = strings.ReplaceAll(clean, s, redaction)
	}
	if clean == msg {
		return err
	}
	return &hiddenError{msg: clean, err: err}
}
