package bot

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/doorman-upnp/doorman/storage"
)

// AudienceConfig configures an Audience.
type AudienceConfig struct {
	DB *storage.DB
	// Lang, when set (DOORMAN_LANG), is the language of every chat text;
	// otherwise the language of who paired counts, then English.
	Lang Lang
	// TopicID, when set (DOORMAN_TELEGRAM_TOPIC_ID), is the forum topic
	// every message goes to; otherwise the topic paired in, if any.
	TopicID int
}

// Audience is how doorman speaks to the owner chat: in which language and
// in which forum topic. The Bot and the Outbox share one. Which chat is the
// owner's is the engine's to say (approvals.Engine.Chat); the audience only
// knows what pairing stored about it.
type Audience struct {
	catalog *Catalog
	lang    Lang
	topic   int

	mu     sync.Mutex
	paired OwnerChat
}

// NewAudience loads the catalogs and what pairing stored.
func NewAudience(cfg AudienceConfig) (*Audience, error) {
	c, err := NewCatalog()
	if err != nil {
		return nil, err
	}
	a := &Audience{catalog: c, lang: cfg.Lang, topic: cfg.TopicID}
	if cfg.DB != nil {
		owner, err := loadOwner(cfg.DB)
		if err != nil {
			return nil, fmt.Errorf("bot: unable to read the paired chat: %w", err)
		}
		a.paired = owner
	}
	return a, nil
}

// setPaired records what pairing stored, or OwnerChat{} after /unpair.
func (a *Audience) setPaired(o OwnerChat) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.paired = o
}

// moved follows the paired chat to the supergroup it became, with its
// language and topic.
func (a *Audience) moved(from, to int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.paired.ChatID == from {
		a.paired.ChatID = to
	}
}

// Words returns the texts for a chat: the configured language, else the
// language of who paired it, else English.
func (a *Audience) Words(chatID int64) Words {
	if a.lang != "" {
		return a.catalog.In(a.lang)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.paired.ChatID != 0 && a.paired.ChatID == chatID {
		return a.catalog.In(LangOfCode(a.paired.LanguageCode))
	}
	return a.catalog.In(English)
}

// WordsFor returns the texts for somebody who is not the owner yet, such as
// a person pairing: the configured language, else their own.
func (a *Audience) WordsFor(u User) Words {
	if a.lang != "" {
		return a.catalog.In(a.lang)
	}
	return a.catalog.In(LangOfCode(u.LanguageCode))
}

// Thread returns the forum topic to write to in a chat: the configured
// topic, else the one the chat was paired in, else 0 (the main thread).
func (a *Audience) Thread(chatID int64) int {
	if a.topic != 0 {
		return a.topic
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.paired.ChatID != 0 && a.paired.ChatID == chatID {
		return a.paired.ThreadID
	}
	return 0
}

// defaultAudience is the audience of an Outbox made without one: what
// pairing stored in db, else English in the main thread.
func defaultAudience(db *storage.DB, logger *slog.Logger) *Audience {
	a, err := NewAudience(AudienceConfig{DB: db})
	if err == nil {
		return a
	}
	logger.Error("unable to read the language and topic of the paired chat; speaking English in the main thread", "err", err)
	if a, err = NewAudience(AudienceConfig{}); err == nil {
		return a
	}
	// The catalogs are built in; only a broken build fails here, and the
	// ids then stand in for the texts.
	logger.Error("unable to load the chat texts", "err", err)
	return &Audience{catalog: &Catalog{words: map[Lang]Words{}}}
}
