package embedded

import (
	"context"
	"database/sql"
	"fmt"
)

// v1Page is how many version 1 messages migrateV1 reads per query.
const v1Page = 4096

// v1Batch collects the version 1 messages that become one batch: messages
// of one topic published in one transaction (they share published_at), in
// offset order.
type v1Batch struct {
	topic   string
	at      int64
	rows    []row
	offsets []int64
	size    int
}

// migrateV1 moves the messages of a version 1 file (one row per message in
// messages, metadata as JSON) into batches, inside the caller's
// transaction, and drops the messages table. Offsets are kept, so that
// consumer groups resume where they were; the end of the log is the
// version 1 sequence, which pruning never set back.
func (st *store) migrateV1(ctx context.Context) error {
	c := st.wconn
	var seq, maxOffset, lastAt int64
	if err := c.QueryRowContext(ctx, `SELECT
		COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'messages'), 0),
		COALESCE((SELECT MAX("offset") FROM messages), 0),
		COALESCE((SELECT MAX(published_at) FROM messages), 0)`).Scan(&seq, &maxOffset, &lastAt); err != nil {
		return fmt.Errorf("read end of version 1 log: %w", err)
	}
	flush := func(b *v1Batch) error {
		first, last := b.offsets[0], b.offsets[len(b.offsets)-1]
		if _, err := c.ExecContext(ctx, `INSERT INTO batches (first_offset, last_offset, topic, published_at, messages) VALUES (?, ?, ?, ?, ?)`,
			first, last, b.topic, b.at, encodeBatch(b.rows, b.offsets)); err != nil {
			return fmt.Errorf("insert batch of offsets %d to %d on topic %q: %w", first, last, b.topic, err)
		}
		return nil
	}
	pending := map[string]*v1Batch{} // by topic
	after := int64(-1)
	for {
		page, err := readV1Page(ctx, c, after)
		if err != nil {
			return err
		}
		for _, m := range page {
			b := pending[m.row.topic]
			if b != nil && (b.at != m.at || b.size+frameSize(&m.row) > maxBatchBlob) {
				if err := flush(b); err != nil {
					return err
				}
				b = nil
			}
			if b == nil {
				b = &v1Batch{topic: m.row.topic, at: m.at}
				pending[m.row.topic] = b
			}
			b.rows = append(b.rows, m.row)
			b.offsets = append(b.offsets, m.offset)
			b.size += frameSize(&m.row)
			after = m.offset
		}
		if len(page) < v1Page {
			break
		}
	}
	for _, b := range pending {
		if err := flush(b); err != nil {
			return err
		}
	}
	if _, err := c.ExecContext(ctx, `UPDATE log_end SET last_offset = ?, last_published_at = ? WHERE id = 1`, max(seq, maxOffset), lastAt); err != nil {
		return fmt.Errorf("store end of log: %w", err)
	}
	if _, err := c.ExecContext(ctx, `DROP TABLE messages`); err != nil {
		return fmt.Errorf("drop version 1 messages table: %w", err)
	}
	return nil
}

// v1Message is a version 1 message about to be migrated.
type v1Message struct {
	offset int64
	at     int64
	row    row
}

// readV1Page reads up to v1Page version 1 messages after offset after.
func readV1Page(ctx context.Context, c *sql.Conn, after int64) ([]v1Message, error) {
	rows, err := c.QueryContext(ctx, `SELECT "offset", topic, uuid, metadata, payload, published_at
		FROM messages WHERE "offset" > ? ORDER BY "offset" LIMIT ?`, after, v1Page)
	if err != nil {
		return nil, fmt.Errorf("read version 1 messages after offset %d: %w", after, err)
	}
	defer rows.Close()
	var page []v1Message
	for rows.Next() {
		var m v1Message
		var md []byte
		if err := rows.Scan(&m.offset, &m.row.topic, &m.row.uuid, &md, &m.row.payload, &m.at); err != nil {
			return nil, fmt.Errorf("read version 1 messages after offset %d: %w", after, err)
		}
		m.row.metadata = emptyMetadata
		if len(md) > 0 {
			decoded, err := decodeJSONMetadata(md)
			if err != nil {
				return nil, fmt.Errorf("decode metadata of version 1 message at offset %d: %w", m.offset, err)
			}
			m.row.metadata = encodeMetadata(decoded)
		}
		page = append(page, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read version 1 messages after offset %d: %w", after, err)
	}
	return page, nil
}

// migrateV2 drops the index on published_at that version 2 files have,
// inside the caller's transaction: publish times follow the offsets, so
// pruning and offsetAt find them along the primary key, and the index
// cost every transaction a page.
func (st *store) migrateV2(ctx context.Context) error {
	if _, err := st.wconn.ExecContext(ctx, `DROP INDEX IF EXISTS batches_published_at`); err != nil {
		return fmt.Errorf("drop index batches_published_at: %w", err)
	}
	return nil
}
