package storage

import (
	"encoding/json"
	"strings"
	"testing"
)

// Databases of older versions hold notes as text and notices as HTML; they
// load, and keep what they said.
func TestOldNotesLoad(t *testing.T) {
	var a Alert
	if err := json.Unmarshal([]byte(`{"ID":3,"State":"superseded","Note":"The share changed; see the newer message."}`), &a); err != nil {
		t.Fatal(err)
	}
	if a.Note != (Note{Kind: NoteText, Text: "The share changed; see the newer message."}) {
		t.Errorf("old alert note = %+v", a.Note)
	}
	if err := json.Unmarshal([]byte(`{"ID":4,"State":"allowed","Note":""}`), &a); err != nil || !a.Note.IsZero() {
		t.Errorf("old empty note = %+v, %v", a.Note, err)
	}
	var it DigestItem
	if err := json.Unmarshal([]byte(`{"ShareKey":"k","Note":"Not closed; see the message below."}`), &it); err != nil || it.Note.Kind != NoteText {
		t.Errorf("old digest note = %+v, %v", it.Note, err)
	}
	var o OutboxItem
	if err := json.Unmarshal([]byte(`{"Seq":1,"Kind":"notice","ChatID":5,"Text":"⛔ <b>Closed again</b>"}`), &o); err != nil || o.Text != "⛔ <b>Closed again</b>" || o.Notice != nil {
		t.Errorf("old notice = %+v, %v", o, err)
	}
	// New notes go round.
	a.Note = Note{Kind: NoteRefused, UPnPCode: 606}
	raw, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var back Alert
	if err := json.Unmarshal(raw, &back); err != nil || back.Note != a.Note {
		t.Errorf("note round trip = %+v, %v (%s)", back.Note, err, raw)
	}
	a.Note = Note{}
	if raw, _ := json.Marshal(a); strings.Contains(string(raw), "Note") {
		t.Errorf("an empty note is stored: %s", raw)
	}
}
