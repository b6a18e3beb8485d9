package erp

import (
	"strconv"
	"time"

	"github.com/tributary/tributary/core"
)

// Export is the document the ERP answers with:
//
//	<export entity="orders">
//	  <record seq="12" key="SO-1001" rev="2" changed="2024-05-01T10:00:00Z">
//	    <field name="status">SHIPPED</field>
//	  </record>
//	  <record seq="13" key="SO-0999" rev="4" deleted="true" changed="..."/>
//	</export>
type Export struct {
	Entity  string   `xml:"entity,attr"`
	Records []Record `xml:"record"`
}

// Record is one changed record. Seq numbers every change in the ERP; Rev
// counts the record's own revisions, starting at 1 when it is created.
type Record struct {
	Seq     uint64    `xml:"seq,attr"`
	Key     string    `xml:"key,attr"`
	Rev     int       `xml:"rev,attr"`
	Deleted bool      `xml:"deleted,attr,omitempty"`
	Changed time.Time `xml:"changed,attr"`
	Fields  []Field   `xml:"field"`
}

// Field is one named value of a record, always text in the export.
type Field struct {
	Name  string `xml:"name,attr"`
	Value string `xml:",chardata"`
}

// change maps a record to a change in the ERP's own vocabulary; the
// sidecar's rules decide which domain events it becomes.
func (r Record) change(entity string) core.Change {
	fields := make(map[string]any, len(r.Fields)+1)
	for _, f := range r.Fields {
		fields[f.Name] = f.Value
	}
	fields["id"] = r.Key
	ch := core.Change{
		Key:      map[string]any{"id": r.Key},
		Meta:     map[string]any{"rev": int64(r.Rev), "seq": int64(r.Seq)},
		Source:   core.SourceInfo{System: "acme_erp", Table: entity, CommitTime: r.Changed},
		Position: core.Position{Version: PositionVersion, Data: []byte(strconv.FormatUint(r.Seq, 10))},
	}
	switch {
	case r.Deleted:
		ch.Op, ch.Before = core.OpDelete, fields
	case r.Rev <= 1:
		ch.Op, ch.After = core.OpCreate, fields
	default:
		ch.Op, ch.After = core.OpUpdate, fields
	}
	return ch
}
