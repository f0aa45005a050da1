package identify

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/doorman-upnp/doorman/identify/internal/ieee"
)

//go:generate go run ./internal/ouigen -in /usr/share/ieee-data/oui.txt -out oui/ma-l.tsv.gz

// embeddedOUI is the IEEE MA-L registry with short vendor names, generated
// from Debian's ieee-data by internal/ouigen (see oui/SOURCE.md). About
// 300 kB gzip'ed; it is decoded only when no system file is usable.
//
//go:embed oui/ma-l.tsv.gz
var embeddedOUI []byte

// embeddedTable decodes the embedded table once per process: the data never
// changes, so every Identifier can share it.
var embeddedTable = sync.OnceValues(func() (*ieee.Table, error) {
	zr, err := gzip.NewReader(bytes.NewReader(embeddedOUI))
	if err != nil {
		return nil, fmt.Errorf("embedded OUI table: %w", err)
	}
	t, err := ieee.ParseCompact(zr)
	if err != nil {
		return nil, fmt.Errorf("embedded OUI table: %w", err)
	}
	return t, nil
})

// maxOUIFileBytes bounds how much of an OUI file is read: IEEE's file is
// about 6 MB; a path pointing at something huge must not eat the memory.
const maxOUIFileBytes = 64 << 20

// ouiTable is the vendor table of one Identifier, loaded on first use in the
// background so that Device can stop waiting for it at its deadline.
type ouiTable struct {
	once  sync.Once
	done  chan struct{}
	table *ieee.Table // set before done is closed
}

// wait returns the table, or nil if it is not loaded before done fires.
func (o *ouiTable) wait(done <-chan struct{}) *ieee.Table {
	select {
	case <-o.done:
		return o.table
	case <-done:
		return nil
	}
}

// loadOUI starts loading the vendor table unless that already happened.
func (id *Identifier) loadOUI() *ouiTable {
	id.oui.once.Do(func() {
		id.oui.done = make(chan struct{})
		go func() {
			defer close(id.oui.done)
			id.oui.table = id.readOUI()
		}()
	})
	return &id.oui
}

// readOUI tries the configured files in order, then the embedded table. A
// missing file is normal (ieee-data is not installed everywhere); a file
// that is there but unusable deserves a warning.
func (id *Identifier) readOUI() *ieee.Table {
	for _, name := range id.ouiFiles {
		t, err := readOUIFile(name)
		if err == nil {
			id.log.Debug("identify: vendor table loaded", "file", name, "prefixes", t.Len())
			return t
		}
		if errors.Is(err, fs.ErrNotExist) {
			id.log.Debug("identify: no OUI file", "file", name)
		} else {
			id.log.Warn("identify: OUI file not usable, trying the next source", "file", name, "err", err)
		}
	}
	t, err := embeddedTable()
	if err != nil {
		// Only a broken build gets here; vendors then stay unknown.
		id.log.Error("identify: no vendor table", "err", err)
		return nil
	}
	id.log.Debug("identify: vendor table loaded", "file", "(embedded)", "prefixes", t.Len())
	return t
}

func readOUIFile(name string) (*ieee.Table, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := ieee.ParseRegistry(io.LimitReader(f, maxOUIFileBytes))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// macPrefix returns the first three octets of a canonical MAC address.
func macPrefix(mac [6]byte) uint32 {
	return uint32(mac[0])<<16 | uint32(mac[1])<<8 | uint32(mac[2])
}

// locallyAdministered reports the U/L bit: such an address was not assigned
// by the IEEE, so its first octets name no vendor. Phones use one per Wi-Fi
// network ("private address") unless told otherwise.
func locallyAdministered(mac [6]byte) bool {
	return mac[0]&0x02 != 0
}
