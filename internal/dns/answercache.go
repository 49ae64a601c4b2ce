package dns

// answerCache keeps one UDP listener's packed answers by the query that
// asked them, so that a query asked before (every query a load test
// sends, and most of a guest's) is answered with a copy and its own ID,
// without parsing, building or packing a message, and without allocating.
//
// The key is the whole query but its ID: flags, question with the name
// as spelled, and the OPT record, which set the answer's case, RD bit and
// truncation. Everything else an answer depends on is fixed for the
// listener (its mode and address) or is the record snapshot, and the
// cache holds the answers of one snapshot only: the first query after a
// change empties it, so a change is seen by the next query. Forwarded
// queries are never cached.
//
// Only the listener's reader goroutine uses it: it has no lock.
type answerCache struct {
	snap    *snapshot
	answers map[string][]byte
}

const (
	// answerCacheEntries bounds the cache; a full cache is emptied, so
	// that names that are asked once (a scan, random names) cannot keep
	// memory.
	answerCacheEntries = 512
	// answerCacheMaxQuery is the longest query cached. Real queries are
	// far shorter.
	answerCacheMaxQuery = 512
)

func newAnswerCache() *answerCache {
	return &answerCache{answers: make(map[string][]byte)}
}

// answer writes the cached answer to pkt, with pkt's ID, into buf and
// returns it, or reports that none is cached. snap is the current record
// snapshot: a different one empties the cache.
func (c *answerCache) answer(pkt []byte, snap *snapshot, buf []byte) ([]byte, bool) {
	if snap != c.snap {
		clear(c.answers)
		c.snap = snap
		return nil, false
	}
	if len(pkt) < 12 {
		return nil, false
	}
	ans, ok := c.answers[string(pkt[2:])]
	if !ok {
		return nil, false
	}
	buf = append(buf[:0], ans...)
	buf[0], buf[1] = pkt[0], pkt[1]
	return buf, true
}

// add caches ans, the answer to pkt built from a snapshot no older than
// the one answer was last given.
func (c *answerCache) add(pkt, ans []byte) {
	if len(pkt) < 12 || len(pkt) > answerCacheMaxQuery || len(ans) < 12 {
		return
	}
	if len(c.answers) >= answerCacheEntries {
		clear(c.answers)
	}
	c.answers[string(pkt[2:])] = append([]byte(nil), ans...)
}
