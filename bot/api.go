// Package bot is doorman's side of Telegram: the Bot API client, the update
// loop, the outbox that delivers alerts, the rendering of alerts and the
// commands and buttons people use.
package bot

import (
	"context"
	"strconv"
	"time"
)

// API is the part of the Telegram Bot API doorman uses. TelegramAPI
// implements it over github.com/go-telegram-bot-api/telegram-bot-api/v5; tests
// may use it against bot/telegramtest or replace it.
//
// Every error an implementation returns is an *APIError or wraps one, says
// which method failed, and never contains the bot token.
type API interface {
	// GetMe checks the token and returns the bot's own user.
	GetMe(ctx context.Context) (User, error)
	// GetUpdates long-polls for updates with update_id >= offset, waiting
	// up to timeout on the server.
	GetUpdates(ctx context.Context, offset int, timeout time.Duration) ([]Update, error)
	// SendMessage sends an HTML message and returns its message ID.
	SendMessage(ctx context.Context, m Outgoing) (messageID int, err error)
	// EditMessage replaces the text and keyboard of a message; an empty kb
	// removes the keyboard.
	EditMessage(ctx context.Context, chatID int64, messageID int, html string, kb Keyboard) error
	// AnswerCallback answers a button press; text is shown to the presser.
	AnswerCallback(ctx context.Context, callbackID, text string) error
	// SetCommands registers the command menu shown to users whose
	// Telegram is set to the language lang, an ISO 639-1 code; "" is the
	// menu for everybody else.
	SetCommands(ctx context.Context, lang string, cmds []Command) error
}

// Outgoing is a message to send.
type Outgoing struct {
	ChatID int64
	// ThreadID is the forum topic to write in, 0 for the chat's main
	// thread.
	ThreadID int
	HTML     string
	// Keyboard is the inline keyboard, none when empty.
	Keyboard Keyboard
	// Silent delivers the message without a sound (disable_notification).
	Silent bool
}

// Button is one inline keyboard button; Data is at most 64 bytes.
type Button struct {
	Text string
	Data string
}

// Keyboard is an inline keyboard, row by row.
type Keyboard [][]Button

// User is a Telegram user.
type User struct {
	ID       int64
	Username string // without @, may be empty
	Name     string // first and last name
	IsBot    bool
	// LanguageCode is the IETF tag of the user's Telegram language, such
	// as "de" or "en-GB"; it may be empty.
	LanguageCode string
}

// Display returns how doorman names the user to people.
func (u User) Display() string {
	switch {
	case u.Name != "" && u.Username != "":
		return u.Name + " (@" + u.Username + ")"
	case u.Username != "":
		return "@" + u.Username
	case u.Name != "":
		return u.Name
	}
	return "user " + itoa(u.ID)
}

// Update is one incoming update; exactly one of Callback and Message is set
// for the kinds doorman handles, neither for the others.
type Update struct {
	ID       int
	Callback *Callback
	Message  *Message
}

// Callback is a press on an inline keyboard button.
type Callback struct {
	ID        string
	From      User
	ChatID    int64 // chat of the message the button belongs to
	MessageID int
	Data      string
}

// Message is a text message to the bot.
type Message struct {
	ID       int
	ChatID   int64
	ChatType string // "private", "group", "supergroup", "channel"
	From     User
	Text     string
	// ThreadID is the forum topic the message was written in, 0 outside
	// topics.
	ThreadID int
	// Command is the bot command without slash and @botname ("list" for
	// "/list@doorman_bot now"), empty when the text is not a command.
	Command string
	// Args is the text after the command, trimmed.
	Args string
}

// Command is an entry of the bot's command menu.
type Command struct {
	Name        string // without slash
	Description string
}

func itoa(n int64) string {
	return strconv.FormatInt(n, 10)
}
