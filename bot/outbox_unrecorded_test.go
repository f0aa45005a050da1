package bot

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/internal/testlog"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/storage/storagetest"
	"github.com/doorman-upnp/doorman/watcher"
)

// switchingOwner is an owner chat that tests move.
type switchingOwner struct{ chat atomic.Int64 }

func (o *switchingOwner) Chat() int64          { return o.chat.Load() }
func (o *switchingOwner) SetChat(chatID int64) { o.chat.Store(chatID) }

// A question Telegram took whose recording failed is recorded as living in
// the chat it was sent to, even when the owner chat moved before the
// retry: its edits and buttons must find it there, not edit whatever
// message has its ID in the new chat.
func TestUnrecordedQuestionKeepsItsChat(t *testing.T) {
	const first, second = int64(5001), int64(5002)
	tg := telegramtest.NewServer(botToken)
	t.Cleanup(tg.Close)
	db := storagetest.Open(t)
	api, err := NewTelegramAPI(TelegramConfig{Token: botToken, BaseURL: tg.URL})
	if err != nil {
		t.Fatal(err)
	}
	owner := &switchingOwner{}
	owner.SetChat(first)
	o := NewOutbox(OutboxConfig{API: api, DB: db, Owner: owner, Logger: testlog.New(t, slog.LevelInfo), MinBackoff: 10 * time.Millisecond, Pace: testPace})
	var calls atomic.Int32
	o.update = func(fn func(tx *storage.Tx) error) error {
		if calls.Add(1) == 1 {
			// The owner pairs another chat while the write fails.
			owner.SetChat(second)
			return errors.New("disk full")
		}
		return db.Update(fn)
	}
	m := watcher.Mapping{Router: testRouter, Service: testSvc, Protocol: "TCP", ExternalPort: 8080, InternalClient: "192.168.77.21", InternalPort: 8080, Description: "web", Enabled: true}
	var alertID uint64
	if err := db.Update(func(tx *storage.Tx) error {
		a := &storage.Alert{Kind: storage.AlertNew, Share: storage.Share{Mapping: m}, State: storage.AlertPending, ChatID: first}
		if err := tx.PutAlert(a); err != nil {
			return err
		}
		a.Batch, alertID = a.ID, a.ID
		if err := tx.PutAlert(a); err != nil {
			return err
		}
		return tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxAlert, AlertID: a.ID, ChatID: first})
	}); err != nil {
		t.Fatal(err)
	}
	drainOutbox(t, o)
	msgs := tg.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want the question once", len(msgs))
	}
	var a storage.Alert
	if err := db.View(func(tx *storage.Tx) (err error) { a, err = tx.Alert(alertID); return err }); err != nil {
		t.Fatal(err)
	}
	if a.ChatID != msgs[0].ChatID || a.MessageID != msgs[0].MessageID {
		t.Errorf("alert recorded as message %d in chat %d; it was sent as %d in chat %d", a.MessageID, a.ChatID, msgs[0].MessageID, msgs[0].ChatID)
	}
}
