package bot

import (
	"log/slog"
	"testing"
	"time"

	"github.com/doorman-upnp/doorman/bot/telegramtest"
	"github.com/doorman-upnp/doorman/internal/testlog"
	"github.com/doorman-upnp/doorman/storage"
	"github.com/doorman-upnp/doorman/storage/storagetest"
	"github.com/doorman-upnp/doorman/watcher"
)

// An edit Telegram will never take goes with the other queued edits of its
// message, which are rendered the same: one call, not one per edit.
func TestRefusedEditDropsTheSameEdits(t *testing.T) {
	tg := telegramtest.NewServer(botToken)
	t.Cleanup(tg.Close)
	db := storagetest.Open(t)
	api, err := NewTelegramAPI(TelegramConfig{Token: botToken, BaseURL: tg.URL})
	if err != nil {
		t.Fatal(err)
	}
	tg.Fail("editMessageText", telegramtest.Failure{Times: -1, Status: 400, Description: "Bad Request: can't parse entities: unsupported start tag"})
	m := watcher.Mapping{Router: testRouter, Service: testSvc, Protocol: "TCP", ExternalPort: 8080, InternalClient: "192.168.77.21", InternalPort: 8080, Description: "web", Enabled: true}
	if err := db.Update(func(tx *storage.Tx) error {
		a := &storage.Alert{Kind: storage.AlertNew, Share: storage.Share{Mapping: m}, State: storage.AlertAllowed, ChatID: ownerChat, MessageID: 7}
		if err := tx.PutAlert(a); err != nil {
			return err
		}
		a.Batch = a.ID
		if err := tx.PutAlert(a); err != nil {
			return err
		}
		for range 5 {
			if err := tx.Enqueue(&storage.OutboxItem{Kind: storage.OutboxEdit, AlertID: a.ID, ChatID: ownerChat}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	o := NewOutbox(OutboxConfig{API: api, DB: db, Logger: testlog.New(t, slog.LevelInfo), MinBackoff: 10 * time.Millisecond, Pace: testPace})
	drainOutbox(t, o)
	if n := tg.Calls("editMessageText"); n != 1 {
		t.Errorf("%d edit calls, want 1 for the 5 edits of one message", n)
	}
}
