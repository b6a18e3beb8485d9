package mysql

import (
	"strings"
	"testing"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

func TestParsePos(t *testing.T) {
	tests := []struct {
		name, flavor, text string
	}{
		{"mariadb", gomysql.MariaDBFlavor, "gtid:0-1-122,1-2-7"},
		{"mariadb empty", gomysql.MariaDBFlavor, "gtid:"},
		{"mysql", gomysql.MySQLFlavor, "gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-122,4e11fa47-71ca-11e1-9e33-c80aa9429562:5"},
		{"file", gomysql.MySQLFlavor, "file:binlog.000003:1234"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := parsePos(tc.flavor, tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if p.String() != tc.text {
				t.Fatalf("String = %s", p)
			}
			hb, err := parsePos(tc.flavor, heartbeatPrefix+tc.text)
			if err != nil || hb.String() != tc.text {
				t.Fatalf("heartbeat form: %v %v", hb, err)
			}
		})
	}
	for _, bad := range []string{"lsn:0/1", "file:nocolon", "file:b.1:x", "gtid:zz"} {
		if _, err := parsePos(gomysql.MariaDBFlavor, bad); err == nil {
			t.Errorf("parsePos(%q) accepted", bad)
		}
	}
}

func TestAtOrBefore(t *testing.T) {
	tests := []struct {
		name, flavor, a, b string
		want               bool
	}{
		{"mariadb same domain", gomysql.MariaDBFlavor, "gtid:0-1-5", "gtid:0-1-9", true},
		{"mariadb after", gomysql.MariaDBFlavor, "gtid:0-1-9", "gtid:0-1-5", false},
		{"mariadb other domain", gomysql.MariaDBFlavor, "gtid:0-1-5,1-1-3", "gtid:0-1-9", false},
		{"mariadb empty first", gomysql.MariaDBFlavor, "gtid:", "gtid:0-1-1", true},
		{"mysql subset", gomysql.MySQLFlavor, "gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", "gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9", true},
		{"mysql gap", gomysql.MySQLFlavor, "gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-9", "gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", false},
		{"file same", gomysql.MySQLFlavor, "file:binlog.000003:400", "file:binlog.000003:1234", true},
		{"file numeric order", gomysql.MySQLFlavor, "file:binlog.000009:400", "file:binlog.000010:4", true},
		{"file later", gomysql.MySQLFlavor, "file:binlog.000010:4", "file:binlog.000009:400", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := parsePos(tc.flavor, tc.a)
			b, _ := parsePos(tc.flavor, tc.b)
			if got := a.atOrBefore(b); got != tc.want {
				t.Fatalf("%s atOrBefore %s = %v", tc.a, tc.b, got)
			}
		})
	}
}

func TestDetectFlavor(t *testing.T) {
	for v, want := range map[string]string{
		"10.11.19-MariaDB-0+deb12u1-log": gomysql.MariaDBFlavor,
		"5.5.5-10.6.12-MariaDB":          gomysql.MariaDBFlavor,
		"8.0.36":                         gomysql.MySQLFlavor,
		"8.4.0-commercial":               gomysql.MySQLFlavor,
	} {
		if got := detectFlavor(v); got != want {
			t.Errorf("detectFlavor(%q) = %s, want %s", v, got, want)
		}
	}
}

func TestCheckSettings(t *testing.T) {
	good := settings{logBin: "1", format: "ROW", rowImage: "FULL", rowMetadata: "FULL", serverID: 1, retention: 7 * 86400}
	tests := []struct {
		name    string
		edit    func(*settings)
		err     string
		warning string
	}{
		{"good", func(*settings) {}, "", ""},
		{"binlog off", func(s *settings) { s.logBin = "0" }, "set log_bin", ""},
		{"statement format", func(s *settings) { s.format = "STATEMENT" }, "binlog_format = 'ROW'", ""},
		{"mixed format", func(s *settings) { s.format = "MIXED" }, "binlog_format is MIXED", ""},
		{"minimal image", func(s *settings) { s.rowImage = "MINIMAL" }, "", "before images carry only the key"},
		{"noblob image", func(s *settings) { s.rowImage = "NOBLOB" }, "", "BLOB and TEXT columns"},
		{"no metadata", func(s *settings) { s.rowMetadata = "NO_LOG" }, "", "binlog_row_metadata = 'FULL'"},
		{"short retention", func(s *settings) { s.retention = 3600 }, "", "kept 1h only"},
		{"our server id", func(s *settings) { s.serverID = 77 }, "server_id 77 is the server's own", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := good
			tc.edit(&s)
			warnings, err := checkSettings(s, 77)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
			joined := strings.Join(warnings, "\n")
			if tc.warning == "" && joined != "" || !strings.Contains(joined, tc.warning) {
				t.Fatalf("warnings = %q, want %q", joined, tc.warning)
			}
		})
	}
}
