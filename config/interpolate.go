package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxSecretFile bounds what a ${file:...} reference reads.
const maxSecretFile = 1 << 20

var envNameRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// prepare walks the document once before any type check: it resolves
// ${...} references in every scalar value (never in keys), and reports keys
// that are set twice or are not plain names. Each node is visited once, even
// when aliases reach it several times.
func (l *loader) prepare(n *yaml.Node, path string, depth int, seen map[*yaml.Node]bool) {
	n = deref(n)
	if n == nil || seen[n] || depth > maxDepth {
		return
	}
	seen[n] = true
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			l.prepare(c, path, depth+1, seen)
		}
	case yaml.MappingNode:
		keys := map[string]*yaml.Node{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := path
			switch {
			case isMerge(k):
			case k.Kind != yaml.ScalarNode:
				l.problem(nil, k, path, "keys must be plain names, not %s", kindName(k))
			case keys[k.Value] != nil:
				l.problem(nil, k, joinPath(path, k.Value), "key %q is set twice (first at line %d); remove one", k.Value, keys[k.Value].Line)
			default:
				keys[k.Value] = k
				p = joinPath(path, k.Value)
			}
			l.prepare(v, p, depth+1, seen)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			l.prepare(c, fmt.Sprintf("%s[%d]", path, i), depth+1, seen)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		out, fromFile, errs := l.expand(n.Value, 0)
		for _, e := range errs {
			l.problem(nil, n, path, "%s", e)
		}
		if len(errs) > 0 {
			l.failed[n] = true
			return
		}
		if fromFile {
			l.fromFile[n] = true
		}
		if out != n.Value {
			n.Value = out
			if n.Style == 0 {
				// A plain scalar's type follows its new text: port: ${PORT}
				// becomes an integer when PORT holds one.
				n.Tag = ""
			}
		}
	}
}

// expand resolves the references in s. It reports whether any value came
// from a file, and a message per reference that could not be resolved.
func (l *loader) expand(s string, depth int) (string, bool, []string) {
	var b strings.Builder
	var errs []string
	fromFile := false
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := closingBrace(s, i+2)
			if end < 0 {
				errs = append(errs, fmt.Sprintf(`unterminated reference %q: close it with "}", or write "$${" for a literal "${"`, s[i:]))
				return s, fromFile, errs
			}
			val, ff, err := l.resolve(s[i+2:end], depth)
			if err != "" {
				errs = append(errs, err)
			}
			fromFile = fromFile || ff
			b.WriteString(val)
			i = end + 1
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), fromFile, errs
}

// closingBrace returns the index of the "}" closing a reference whose body
// starts at from, allowing nested references in defaults.
func closingBrace(s string, from int) int {
	depth := 1
	for j := from; j < len(s); j++ {
		switch {
		case strings.HasPrefix(s[j:], "$${"):
			j += 2
		case strings.HasPrefix(s[j:], "${"):
			depth++
			j++
		case s[j] == '}':
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

// resolve returns the value of one reference body: "NAME", "NAME:-default"
// or "file:PATH".
func (l *loader) resolve(ref string, depth int) (string, bool, string) {
	if depth > 8 {
		return "", false, fmt.Sprintf("reference ${%s} nests defaults too deeply (at most 8 levels)", ref)
	}
	if p, ok := strings.CutPrefix(ref, "file:"); ok {
		v, err := l.readSecret(p)
		if err != "" {
			return "", true, err
		}
		return v, true, ""
	}
	name, def, hasDef := strings.Cut(ref, ":-")
	if !envNameRe.MatchString(name) {
		return "", false, fmt.Sprintf("invalid reference %q: write ${NAME}, ${NAME:-default} or ${file:/path/to/secret}, or $${ for a literal ${", "${"+ref+"}")
	}
	v, ok := os.LookupEnv(name)
	if hasDef && (!ok || v == "") {
		out, ff, errs := l.expand(def, depth+1)
		return out, ff, strings.Join(errs, "; ")
	}
	if !ok {
		return "", false, fmt.Sprintf("environment variable %q is not set: set it, or give a default with ${%s:-default}", name, name)
	}
	return v, false, ""
}

// readSecret reads a ${file:...} reference: the file's content without its
// trailing newline. Relative paths resolve against the configuration's
// directory.
func (l *loader) readSecret(p string) (string, string) {
	if p == "" {
		return "", "empty path in ${file:}: write ${file:/path/to/secret}"
	}
	full := p
	if !filepath.IsAbs(full) {
		full = filepath.Join(l.dir, full)
	}
	open := l.openSecret
	if open == nil {
		open = func(p string) (io.ReadCloser, error) { return os.Open(p) }
	}
	f, err := open(full)
	if err != nil {
		return "", fmt.Sprintf("cannot read ${file:%s}: %v; check the path (relative paths start from %s) and its permissions", p, err, l.dir)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", fmt.Sprintf("cannot read ${file:%s}: %v", p, err)
	}
	if len(data) > maxSecretFile {
		return "", fmt.Sprintf("${file:%s} is larger than %d bytes; point it at the secret itself", p, maxSecretFile)
	}
	return strings.TrimRight(string(data), "\r\n"), ""
}
