package mysql

import (
	"fmt"
	"strconv"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// binlogPos is a place between two transactions of the binlog: the GTID
// set executed before it when the server has GTIDs (MariaDB always;
// MySQL with gtid_mode=ON), else a binlog file and offset. Its text form
// is the commit part of the connector's positions (cdc.StreamPosition):
// every change of a transaction carries the place before that
// transaction, from which a restart reads the transaction again.
//
//	gtid:0-1-122,1-2-7          MariaDB domain-server-sequence
//	gtid:3E11FA47-...:1-122     MySQL GTID set
//	file:binlog.000003:1234     file and offset
//
// A heartbeat's position is the place prefixed with "hb:": nothing at
// that place is skipped on resume.
type binlogPos struct {
	gtid gomysql.GTIDSet
	file string
	pos  uint32
}

const heartbeatPrefix = "hb:"

// String returns the text form.
func (p binlogPos) String() string {
	if p.gtid != nil {
		return "gtid:" + p.gtid.String()
	}
	return "file:" + p.file + ":" + strconv.FormatUint(uint64(p.pos), 10)
}

// clone returns a copy that later updates of p do not change.
func (p binlogPos) clone() binlogPos {
	if p.gtid != nil {
		p.gtid = p.gtid.Clone()
	}
	return p
}

// parsePos reads the text form written by String, for a server of flavor
// (gomysql.MySQLFlavor or gomysql.MariaDBFlavor).
func parsePos(flavor, s string) (binlogPos, error) {
	s = stripResnap(strings.TrimPrefix(s, heartbeatPrefix))
	switch {
	case strings.HasPrefix(s, "gtid:"):
		set, err := gomysql.ParseGTIDSet(flavor, s[len("gtid:"):])
		if err != nil {
			return binlogPos{}, fmt.Errorf("binlog position %q is not a %s GTID set: %w", s, flavor, err)
		}
		return binlogPos{gtid: set}, nil
	case strings.HasPrefix(s, "file:"):
		rest := s[len("file:"):]
		i := strings.LastIndexByte(rest, ':')
		if i <= 0 {
			return binlogPos{}, fmt.Errorf("binlog position %q: expected file:NAME:OFFSET", s)
		}
		n, err := strconv.ParseUint(rest[i+1:], 10, 32)
		if err != nil {
			return binlogPos{}, fmt.Errorf("binlog position %q: offset: %w", s, err)
		}
		return binlogPos{file: rest[:i], pos: uint32(n)}, nil
	}
	return binlogPos{}, fmt.Errorf("binlog position %q: expected gtid:SET or file:NAME:OFFSET", s)
}

// atOrBefore reports whether p is at or before q (both of one kind).
func (p binlogPos) atOrBefore(q binlogPos) bool {
	if p.gtid != nil || q.gtid != nil {
		if p.gtid == nil || q.gtid == nil {
			return false
		}
		return q.gtid.Contain(p.gtid)
	}
	if p.file != q.file {
		return binlogFileLess(p.file, q.file)
	}
	return p.pos <= q.pos
}

// binlogFileLess orders binlog file names by their numeric suffix.
func binlogFileLess(a, b string) bool {
	na, nb := fileSeq(a), fileSeq(b)
	if na != nb {
		return na < nb
	}
	return a < b
}

func fileSeq(name string) uint64 {
	i := strings.LastIndexByte(name, '.')
	n, _ := strconv.ParseUint(name[i+1:], 10, 64)
	return n
}
