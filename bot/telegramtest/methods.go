package telegramtest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// handler maps a lower-cased method name to its implementation; method names
// are case-insensitive in the real API.
func (s *Server) handler(key string) methodFunc {
	switch key {
	case "getme":
		return s.getMe
	case "sendmessage":
		return s.sendMessage
	case "editmessagetext":
		return s.editMessageText
	case "editmessagereplymarkup":
		return s.editMessageReplyMarkup
	case "deletemessage":
		return s.deleteMessage
	case "answercallbackquery":
		return s.answerCallbackQuery
	case "setmycommands":
		return s.setMyCommands
	case "getmycommands":
		return s.getMyCommands
	case "deletemycommands":
		return s.deleteMyCommands
	case "getchat":
		return s.getChat
	case "sendchataction":
		return s.sendChatAction
	case "getupdates":
		return s.getUpdates
	case "deletewebhook":
		return s.deleteWebhook
	case "getwebhookinfo":
		return s.getWebhookInfo
	}
	return nil
}

// chatParam must be called with s.mu held.
func (s *Server) chatParam(f url.Values) (int64, *apiError) {
	v := f.Get("chat_id")
	if v == "" {
		return 0, badRequest("chat_id is empty")
	}
	// @channelusername is valid in the real API, but no such channel exists
	// here.
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id == 0 || s.unreachable[id] {
		return 0, badRequest("chat not found")
	}
	if to, ok := s.migrated[id]; ok {
		e := badRequest("group chat was upgraded to a supergroup chat")
		e.migrateTo = to
		return 0, e
	}
	return id, nil
}

func formBool(f url.Values, key string) bool {
	b, _ := strconv.ParseBool(f.Get(key))
	return b
}

func (s *Server) getMe(context.Context, url.Values) (any, *apiError) {
	return apiMe{apiUser: s.botUser(), CanJoinGroups: true}, nil
}

func (s *Server) sendMessage(_ context.Context, f url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	chatID, e := s.chatParam(f)
	if e != nil {
		return nil, e
	}
	text, mode, plain, kb, e := messageContent(f)
	if e != nil {
		return nil, e
	}
	m := &msgState{
		text:           text,
		parseMode:      mode,
		plain:          plain,
		kb:             kb,
		disablePreview: formBool(f, "disable_web_page_preview"),
		fromBot:        true,
		created:        time.Now(),
		silent:         formBool(f, "disable_notification"),
	}
	if raw := f.Get("message_thread_id"); raw != "" {
		thread, err := strconv.Atoi(raw)
		if err != nil || thread <= 0 {
			return nil, badRequest("message thread not found")
		}
		if s.goneTopics[[2]int64{chatID, int64(thread)}] {
			return nil, badRequest("message thread not found")
		}
		m.threadID = thread
	}
	id := s.addMessage(chatID, m)
	s.messages = append(s.messages, Message{
		ChatID:                chatID,
		MessageID:             id,
		Text:                  text,
		ParseMode:             mode,
		Buttons:               cloneButtons(kb.buttons),
		DisableWebPagePreview: m.disablePreview,
		DisableNotification:   m.silent,
		ThreadID:              m.threadID,
		Time:                  m.created,
	})
	s.broadcast()
	return s.messageJSON(chatID, id, m), nil
}

// messageContent checks what sendMessage and editMessageText share: the
// text, its parse mode and the keyboard.
func messageContent(f url.Values) (text, mode, plain string, kb keyboard, e *apiError) {
	text, mode = f.Get("text"), f.Get("parse_mode")
	if text == "" {
		return "", "", "", kb, badRequest("message text is empty")
	}
	if plain, e = render(text, mode); e != nil {
		return "", "", "", kb, e
	}
	if kb, e = parseMarkup(f.Get("reply_markup")); e != nil {
		return "", "", "", kb, e
	}
	return text, mode, plain, kb, nil
}

// editTarget must be called with s.mu held.
func (s *Server) editTarget(f url.Values) (int64, int, *msgState, *apiError) {
	if f.Get("inline_message_id") != "" && f.Get("chat_id") == "" {
		// Inline messages are never sent through this server.
		return 0, 0, nil, badRequest("MESSAGE_ID_INVALID")
	}
	chatID, e := s.chatParam(f)
	if e != nil {
		return 0, 0, nil, e
	}
	id, _ := strconv.Atoi(f.Get("message_id"))
	m := s.lookup(chatID, id)
	if m == nil {
		return 0, 0, nil, badRequest("message to edit not found")
	}
	if !m.fromBot {
		return 0, 0, nil, badRequest("message can't be edited")
	}
	return chatID, id, m, nil
}

const notModified = "message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"

func (s *Server) editMessageText(_ context.Context, f url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	chatID, id, m, e := s.editTarget(f)
	if e != nil {
		return nil, e
	}
	// Omitting reply_markup removes the keyboard, a classic surprise.
	text, mode, plain, kb, e := messageContent(f)
	if e != nil {
		return nil, e
	}
	// Same source text in the same mode renders the same, so this never
	// rejects an edit that Telegram would accept.
	if text == m.text && strings.EqualFold(mode, m.parseMode) && string(kb.raw) == string(m.kb.raw) {
		return nil, badRequest(notModified)
	}
	m.text, m.parseMode, m.plain, m.kb = text, mode, plain, kb
	m.disablePreview = formBool(f, "disable_web_page_preview")
	m.editDate = time.Now().Unix()
	s.edits = append(s.edits, Edit{
		ChatID:    chatID,
		MessageID: id,
		Method:    "editMessageText",
		Text:      text,
		ParseMode: mode,
		Buttons:   cloneButtons(kb.buttons),
	})
	s.broadcast()
	return s.messageJSON(chatID, id, m), nil
}

func (s *Server) editMessageReplyMarkup(_ context.Context, f url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	chatID, id, m, e := s.editTarget(f)
	if e != nil {
		return nil, e
	}
	kb, e := parseMarkup(f.Get("reply_markup"))
	if e != nil {
		return nil, e
	}
	if string(kb.raw) == string(m.kb.raw) {
		return nil, badRequest(notModified)
	}
	m.kb = kb
	m.editDate = time.Now().Unix()
	s.edits = append(s.edits, Edit{
		ChatID:    chatID,
		MessageID: id,
		Method:    "editMessageReplyMarkup",
		Buttons:   cloneButtons(kb.buttons),
	})
	s.broadcast()
	return s.messageJSON(chatID, id, m), nil
}

func (s *Server) deleteMessage(_ context.Context, f url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	chatID, e := s.chatParam(f)
	if e != nil {
		return nil, e
	}
	id, _ := strconv.Atoi(f.Get("message_id"))
	m := s.lookup(chatID, id)
	if m == nil {
		return nil, badRequest("message to delete not found")
	}
	m.deleted = true
	s.broadcast()
	return true, nil
}

func (s *Server) answerCallbackQuery(_ context.Context, f url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := f.Get("callback_query_id")
	// A query can be answered once; later answers and made-up ids fail alike.
	if answered, ok := s.queries[id]; !ok || answered {
		return nil, badRequest("query is too old and response timeout expired or query ID is invalid")
	}
	s.queries[id] = true
	s.answers = append(s.answers, CallbackAnswer{ID: id, Text: f.Get("text"), ShowAlert: formBool(f, "show_alert")})
	s.broadcast()
	return true, nil
}

// scopeKey identifies a command list by scope and language. The default
// scope is the empty key whether it is sent explicitly or not.
func scopeKey(f url.Values) (string, *apiError) {
	key := ""
	if raw := f.Get("scope"); raw != "" {
		var scope map[string]any
		if err := json.Unmarshal([]byte(raw), &scope); err != nil || scope == nil {
			return "", badRequest("can't parse BotCommandScope JSON object")
		}
		if scope["type"] != "default" {
			b, _ := json.Marshal(scope) // map keys are sorted, so this is canonical
			key = string(b)
		}
	}
	if lang := f.Get("language_code"); lang != "" {
		key += "|" + lang
	}
	return key, nil
}

func validCommand(c string) bool {
	if len(c) == 0 || len(c) > 32 {
		return false
	}
	for i := 0; i < len(c); i++ {
		if ch := c[i]; !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '_') {
			return false
		}
	}
	return true
}

func (s *Server) setMyCommands(_ context.Context, f url.Values) (any, *apiError) {
	var cmds []apiCommand
	if err := json.Unmarshal([]byte(f.Get("commands")), &cmds); err != nil {
		return nil, badRequest("can't parse commands JSON object")
	}
	if len(cmds) > 100 {
		return nil, badRequest("BOT_COMMANDS_TOO_MUCH")
	}
	out := make([]Command, len(cmds))
	for i, c := range cmds {
		if !validCommand(c.Command) {
			return nil, badRequest("BOT_COMMAND_INVALID")
		}
		if n := utf8.RuneCountInString(c.Description); n == 0 || n > 256 {
			return nil, badRequest("BOT_COMMAND_DESCRIPTION_INVALID")
		}
		out[i] = Command(c)
	}
	key, e := scopeKey(f)
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands[key] = out
	s.broadcast()
	return true, nil
}

func (s *Server) getMyCommands(_ context.Context, f url.Values) (any, *apiError) {
	key, e := scopeKey(f)
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]apiCommand, 0, len(s.commands[key]))
	for _, c := range s.commands[key] {
		out = append(out, apiCommand(c))
	}
	return out, nil
}

func (s *Server) deleteMyCommands(_ context.Context, f url.Values) (any, *apiError) {
	key, e := scopeKey(f)
	if e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.commands, key)
	s.broadcast()
	return true, nil
}

func (s *Server) getChat(_ context.Context, f url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, e := s.chatParam(f)
	if e != nil {
		return nil, e
	}
	return chatFor(id), nil
}

func (s *Server) sendChatAction(_ context.Context, f url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, e := s.chatParam(f); e != nil {
		return nil, e
	}
	switch f.Get("action") {
	case "typing", "upload_photo", "record_video", "upload_video", "record_voice",
		"upload_voice", "upload_document", "choose_sticker", "find_location",
		"record_video_note", "upload_video_note":
		return true, nil
	}
	return nil, badRequest("wrong parameter action in request")
}

func (s *Server) deleteWebhook(_ context.Context, f url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if formBool(f, "drop_pending_updates") {
		s.updates = nil
		s.broadcast()
	}
	return true, nil
}

func (s *Server) getWebhookInfo(context.Context, url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]any{"url": "", "has_custom_certificate": false, "pending_update_count": len(s.updates)}, nil
}

// getUpdates long-polls like the real API: offset confirms (drops) earlier
// updates, unconfirmed ones are delivered again, and a newer getUpdates
// call ends an older waiting one with 409 Conflict, which is how Telegram
// reports two instances of one bot polling at once.
func (s *Server) getUpdates(ctx context.Context, f url.Values) (any, *apiError) {
	offset, _ := strconv.Atoi(f.Get("offset"))
	limit, _ := strconv.Atoi(f.Get("limit"))
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	timeout, _ := strconv.Atoi(f.Get("timeout"))
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(time.Duration(timeout) * time.Second)
		defer t.Stop()
		expired = t.C
	}

	s.mu.Lock()
	s.pollGen++
	gen := s.pollGen
	switch {
	case offset > 0:
		i := 0
		for i < len(s.updates) && s.updates[i].UpdateID < offset {
			i++
		}
		s.updates = s.updates[i:]
	case offset < 0 && -offset < len(s.updates):
		s.updates = s.updates[len(s.updates)+offset:]
	}
	s.broadcast() // wakes an older poll so it sees it was superseded
	parked := false
	unpark := func() {
		if parked {
			s.blocked["getupdates"]--
			s.broadcast()
		}
	}
	for {
		if gen != s.pollGen {
			unpark()
			s.mu.Unlock()
			return nil, &apiError{status: http.StatusConflict, desc: conflictTerminated}
		}
		if len(s.updates) > 0 || expired == nil {
			out := append([]apiUpdate{}, s.updates[:min(limit, len(s.updates))]...)
			unpark()
			s.mu.Unlock()
			return out, nil
		}
		if !parked {
			parked = true
			s.blocked["getupdates"]++
			s.broadcast()
		}
		ch := s.changed
		s.mu.Unlock()
		var res any
		var err *apiError
		select {
		case <-ch:
		case <-expired:
			res = []apiUpdate{}
		case <-ctx.Done():
			err = &apiError{abort: true}
		case <-s.closing:
			err = &apiError{abort: true}
		}
		s.mu.Lock()
		if res != nil || err != nil {
			unpark()
			s.mu.Unlock()
			return res, err
		}
	}
}
