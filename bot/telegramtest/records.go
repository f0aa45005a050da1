package telegramtest

import (
	"context"
	"strconv"
	"time"
)

// Button is one inline keyboard button as the client sent it. Only callback
// buttons are interpreted; other kinds keep their Text only.
type Button struct {
	Text         string
	CallbackData string
}

// Message is a message the bot delivered, as it was sent. Later edits do
// not change it; see Current for the state a user would see now.
type Message struct {
	ChatID    int64
	MessageID int
	Text      string // as sent, markup included
	ParseMode string
	Buttons   [][]Button // nil without an inline keyboard
	// DisableWebPagePreview mirrors the flag because alert texts with URLs
	// unfurl into large previews unless it is set.
	DisableWebPagePreview bool
	// DisableNotification is Telegram's "send silently": the message
	// arrives without a sound.
	DisableNotification bool
	// ThreadID is the forum topic (message_thread_id) it went to, 0 for
	// the chat's main thread.
	ThreadID int
	Time     time.Time
}

// Edit is a successful editMessageText or editMessageReplyMarkup.
type Edit struct {
	ChatID    int64
	MessageID int
	Method    string // "editMessageText" or "editMessageReplyMarkup"
	Text      string // empty for markup-only edits
	ParseMode string
	Buttons   [][]Button // the new keyboard; nil when the edit removed it
}

// CallbackAnswer is a successful answerCallbackQuery.
type CallbackAnswer struct {
	ID        string
	Text      string
	ShowAlert bool
}

// Command is one entry of setMyCommands.
type Command struct {
	Command     string
	Description string
}

type chatState struct {
	lastID int
	msgs   map[int]*msgState
}

// msgState is the current state of a message in a chat, which edits and
// deletions change, unlike the Message log.
type msgState struct {
	text           string
	parseMode      string
	plain          string
	kb             keyboard
	disablePreview bool
	fromBot        bool
	fromUser       int64
	entities       []apiEntity
	created        time.Time
	editDate       int64
	deleted        bool
	threadID       int
	silent         bool
	// lang is the language_code of a user's message, "" for the default.
	lang string
}

// chat must be called with s.mu held.
func (s *Server) chat(id int64) *chatState {
	c := s.chats[id]
	if c == nil {
		c = &chatState{msgs: map[int]*msgState{}}
		s.chats[id] = c
	}
	return c
}

// lookup must be called with s.mu held.
func (s *Server) lookup(chatID int64, messageID int) *msgState {
	c := s.chats[chatID]
	if c == nil {
		return nil
	}
	m := c.msgs[messageID]
	if m == nil || m.deleted {
		return nil
	}
	return m
}

// addMessage allocates the next id of the chat. Users and the bot share the
// sequence, as they do in a real private chat. Must be called with s.mu held.
func (s *Server) addMessage(chatID int64, m *msgState) int {
	c := s.chat(chatID)
	c.lastID++
	c.msgs[c.lastID] = m
	return c.lastID
}

func (s *Server) messageJSON(chatID int64, id int, m *msgState) *apiMessage {
	out := &apiMessage{
		MessageID:   id,
		Chat:        chatFor(chatID),
		Date:        m.created.Unix(),
		EditDate:    m.editDate,
		Text:        m.plain,
		Entities:    m.entities,
		ReplyMarkup: m.kb.raw,
	}
	if m.threadID != 0 {
		out.MessageThreadID = m.threadID
		out.IsTopicMessage = true
		out.Chat.IsForum = true
	}
	if m.fromBot {
		u := s.botUser()
		out.From = &u
	} else {
		u := userFor(m.fromUser)
		if m.lang != "" {
			u.LanguageCode = m.lang
		}
		out.From = &u
	}
	return out
}

func cloneButtons(b [][]Button) [][]Button {
	if b == nil {
		return nil
	}
	out := make([][]Button, len(b))
	for i, row := range b {
		out[i] = append([]Button(nil), row...)
	}
	return out
}

func (m Message) clone() Message {
	m.Buttons = cloneButtons(m.Buttons)
	return m
}

func (e Edit) clone() Edit {
	e.Buttons = cloneButtons(e.Buttons)
	return e
}

// Messages returns the messages delivered so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneAll(s.messages, Message.clone)
}

// Edits returns the successful edits so far, in order.
func (s *Server) Edits() []Edit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return cloneAll(s.edits, Edit.clone)
}

// CallbackAnswers returns the successful answerCallbackQuery calls, in order.
func (s *Server) CallbackAnswers() []CallbackAnswer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]CallbackAnswer(nil), s.answers...)
}

// Commands returns the command list last set for the default scope and no
// language, which is what users see unless a narrower list applies.
func (s *Server) Commands() []Command {
	return s.CommandsFor("")
}

// CommandsFor returns the command list last set for the default scope and
// the language code lang ("" for none): what a user whose Telegram is set
// to lang sees.
func (s *Server) CommandsFor(lang string) []Command {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := ""
	if lang != "" {
		key = "|" + lang
	}
	return append([]Command(nil), s.commands[key]...)
}

// Current returns a message as a user would see it now, after edits, and
// false if it was never sent or has been deleted. Messages the user sent
// with SendText are included.
func (s *Server) Current(chatID int64, messageID int) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.lookup(chatID, messageID)
	if m == nil {
		return Message{}, false
	}
	return Message{
		ChatID:                chatID,
		MessageID:             messageID,
		Text:                  m.text,
		ParseMode:             m.parseMode,
		Buttons:               cloneButtons(m.kb.buttons),
		DisableWebPagePreview: m.disablePreview,
		DisableNotification:   m.silent,
		ThreadID:              m.threadID,
		Time:                  m.created,
	}, true
}

func cloneAll[T any](in []T, clone func(T) T) []T {
	out := make([]T, len(in))
	for i, v := range in {
		out[i] = clone(v)
	}
	return out
}

// WaitMessage returns the first delivered message, including those delivered
// before the call, for which match is true (nil matches any). It fails when
// ctx ends or the server closes first.
func (s *Server) WaitMessage(ctx context.Context, match func(Message) bool) (Message, error) {
	return waitFor(ctx, s, "message", func(from int) []Message {
		return cloneAll(s.messages[from:], Message.clone)
	}, match)
}

// WaitEdit is WaitMessage for edits.
func (s *Server) WaitEdit(ctx context.Context, match func(Edit) bool) (Edit, error) {
	return waitFor(ctx, s, "edit", func(from int) []Edit {
		return cloneAll(s.edits[from:], Edit.clone)
	}, match)
}

// WaitCallbackAnswer waits for the answer to the callback query id, which
// PressButton returned; Telegram clients show a spinner until it comes.
func (s *Server) WaitCallbackAnswer(ctx context.Context, id string) (CallbackAnswer, error) {
	return waitFor(ctx, s, "answer to callback query "+id, func(from int) []CallbackAnswer {
		return append([]CallbackAnswer(nil), s.answers[from:]...)
	}, func(a CallbackAnswer) bool { return a.ID == id })
}

// enqueue must be called with s.mu held.
func (s *Server) enqueue(u apiUpdate) {
	s.lastUpdateID++
	u.UpdateID = s.lastUpdateID
	s.updates = append(s.updates, u)
	s.broadcast()
}

// PressButton queues the callback_query a user's tap on an inline button
// produces and returns its id, which the bot must answer. The message is
// described as it currently is; unknown or deleted messages get a minimal
// stand-in so tests can press buttons on messages they made up.
func (s *Server) PressButton(chatID, fromUserID int64, messageID int, data string) (callbackQueryID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lastQueryID++
	id := strconv.FormatInt(s.lastQueryID, 10)
	s.queries[id] = false
	msg := &apiMessage{MessageID: messageID, Chat: chatFor(chatID), Date: time.Now().Unix()}
	if m := s.lookup(chatID, messageID); m != nil {
		msg = s.messageJSON(chatID, messageID, m)
	}
	s.enqueue(apiUpdate{CallbackQuery: &apiCallbackQuery{
		ID:           id,
		From:         userFor(fromUserID),
		Message:      msg,
		ChatInstance: chatInstance(chatID),
		Data:         data,
	}})
	return id
}

// SendText queues a message from a user. A leading /command gets a
// bot_command entity, as Telegram adds one, so clients' command parsing
// works. The message takes the chat's next message id.
func (s *Server) SendText(chatID, fromUserID int64, text string) {
	s.SendUserMessage(UserMessage{ChatID: chatID, From: fromUserID, Text: text})
}

// UserMessage is a message from a user, with the details that SendText
// leaves at their defaults.
type UserMessage struct {
	ChatID int64
	From   int64
	Text   string
	// ThreadID is the forum topic the message is written in, 0 for none;
	// the chat is then a forum supergroup.
	ThreadID int
	// LanguageCode is the sender's Telegram language, "en" when empty.
	LanguageCode string
}

// SendUserMessage queues a message from a user, like SendText.
func (s *Server) SendUserMessage(um UserMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := &msgState{
		text:     um.Text,
		plain:    um.Text,
		fromUser: um.From,
		entities: commandEntities(um.Text),
		created:  time.Now(),
		threadID: um.ThreadID,
		lang:     um.LanguageCode,
	}
	id := s.addMessage(um.ChatID, m)
	s.enqueue(apiUpdate{Message: s.messageJSON(um.ChatID, id, m)})
}
