package telegramtest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// The wire types below are written from the Bot API documentation rather
// than borrowed from a client library, so that a client's misreading of the
// protocol shows up as a test failure instead of being mirrored.

type apiUser struct {
	ID           int64  `json:"id"`
	IsBot        bool   `json:"is_bot"`
	FirstName    string `json:"first_name"`
	Username     string `json:"username,omitempty"`
	LanguageCode string `json:"language_code,omitempty"`
}

type apiMe struct {
	apiUser
	CanJoinGroups           bool `json:"can_join_groups"`
	CanReadAllGroupMessages bool `json:"can_read_all_group_messages"`
	SupportsInlineQueries   bool `json:"supports_inline_queries"`
}

type apiChat struct {
	ID        int64  `json:"id"`
	Type      string `json:"type"`
	Title     string `json:"title,omitempty"`
	Username  string `json:"username,omitempty"`
	FirstName string `json:"first_name,omitempty"`
	IsForum   bool   `json:"is_forum,omitempty"`
}

type apiEntity struct {
	Type   string `json:"type"`
	Offset int    `json:"offset"`
	Length int    `json:"length"`
}

type apiMessage struct {
	MessageID       int             `json:"message_id"`
	MessageThreadID int             `json:"message_thread_id,omitempty"`
	IsTopicMessage  bool            `json:"is_topic_message,omitempty"`
	From            *apiUser        `json:"from,omitempty"`
	Chat            apiChat         `json:"chat"`
	Date            int64           `json:"date"`
	EditDate        int64           `json:"edit_date,omitempty"`
	Text            string          `json:"text,omitempty"`
	Entities        []apiEntity     `json:"entities,omitempty"`
	ReplyMarkup     json.RawMessage `json:"reply_markup,omitempty"`
}

type apiCallbackQuery struct {
	ID           string      `json:"id"`
	From         apiUser     `json:"from"`
	Message      *apiMessage `json:"message,omitempty"`
	ChatInstance string      `json:"chat_instance"`
	Data         string      `json:"data,omitempty"`
}

type apiUpdate struct {
	UpdateID      int               `json:"update_id"`
	Message       *apiMessage       `json:"message,omitempty"`
	CallbackQuery *apiCallbackQuery `json:"callback_query,omitempty"`
}

type apiCommand struct {
	Command     string `json:"command"`
	Description string `json:"description"`
}

func (s *Server) botUser() apiUser {
	return apiUser{ID: s.botID, IsBot: true, FirstName: "Telegramtest", Username: s.botUsername}
}

// userFor invents a stable identity per id so assertions can rely on it.
func userFor(id int64) apiUser {
	return apiUser{ID: id, FirstName: "User", Username: fmt.Sprintf("user%d", id), LanguageCode: "en"}
}

// chatFor derives the chat type from the id the way Telegram allocates them:
// users are positive, basic groups negative, supergroups and channels below
// -10^12.
func chatFor(id int64) apiChat {
	switch {
	case id > 0:
		u := userFor(id)
		return apiChat{ID: id, Type: "private", FirstName: u.FirstName, Username: u.Username}
	case id <= -1000000000000:
		return apiChat{ID: id, Type: "supergroup", Title: fmt.Sprintf("Supergroup %d", -id)}
	default:
		return apiChat{ID: id, Type: "group", Title: fmt.Sprintf("Group %d", -id)}
	}
}

// chatInstance only has to be stable per chat and opaque, like the real one.
func chatInstance(chatID int64) string {
	return strconv.FormatUint(uint64(chatID)*0x9E3779B97F4A7C15>>1, 10)
}

// keyboard is a parsed inline keyboard. raw is its canonical JSON, used both
// to echo it back and to decide whether an edit changes anything.
type keyboard struct {
	buttons [][]Button
	raw     json.RawMessage
}

// isInlineAction tells the fields that give an inline button something to
// do; Telegram rejects buttons that have none of them.
func isInlineAction(field string) bool {
	switch field {
	case "url", "callback_data", "web_app", "login_url", "switch_inline_query",
		"switch_inline_query_current_chat", "switch_inline_query_chosen_chat",
		"copy_text", "callback_game", "pay":
		return true
	}
	return false
}

// parseMarkup reads reply_markup. Only inline keyboards are kept: reply
// keyboards and force_reply are accepted but, as in real Telegram, never
// echoed in the returned Message.
func parseMarkup(raw string) (keyboard, *apiError) {
	if raw == "" {
		return keyboard{}, nil
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &top); err != nil || top == nil {
		return keyboard{}, badRequest("can't parse reply keyboard markup JSON object")
	}
	ik, ok := top["inline_keyboard"]
	if !ok {
		return keyboard{}, nil
	}
	var rows [][]map[string]json.RawMessage
	if err := json.Unmarshal(ik, &rows); err != nil {
		return keyboard{}, badRequest("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
	}
	if len(rows) == 0 {
		return keyboard{}, nil
	}
	kb := keyboard{buttons: make([][]Button, len(rows))}
	for i, row := range rows {
		kb.buttons[i] = make([]Button, len(row))
		for j, b := range row {
			var text string
			if err := json.Unmarshal(b["text"], &text); err != nil {
				return keyboard{}, badRequest("can't parse inline keyboard button: Field \"text\" must be of type String")
			}
			hasAction := false
			for field := range b {
				hasAction = hasAction || isInlineAction(field)
			}
			if !hasAction {
				return keyboard{}, badRequest("can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard")
			}
			var data string
			if rawData, ok := b["callback_data"]; ok {
				if err := json.Unmarshal(rawData, &data); err != nil {
					return keyboard{}, badRequest("can't parse inline keyboard button: Field \"callback_data\" must be of type String")
				}
				if len(data) > 64 {
					return keyboard{}, badRequest("BUTTON_DATA_INVALID")
				}
			}
			kb.buttons[i][j] = Button{Text: text, CallbackData: data}
		}
	}
	canon, err := json.Marshal(map[string]any{"inline_keyboard": rows})
	if err != nil {
		return keyboard{}, badRequest("can't parse reply keyboard markup JSON object")
	}
	kb.raw = canon
	return kb, nil
}

// render returns the text a Telegram client displays for text in parse
// mode mode, with Telegram's errors for input it would refuse.
func render(text, mode string) (string, *apiError) {
	plain := text
	switch strings.ToLower(mode) {
	case "":
	case "html":
		var err error
		if plain, err = renderHTML(text); err != nil {
			return "", badRequest("can't parse entities: " + err.Error())
		}
	case "markdown", "markdownv2":
		// Markdown is passed through unchecked; see the package notes.
		return text, nil
	default:
		return "", badRequest("unsupported parse_mode")
	}
	if strings.TrimSpace(plain) == "" {
		return "", badRequest("message text is empty")
	}
	// Telegram counts the limit in UTF-16 code units of the rendered text.
	if len(utf16.Encode([]rune(plain))) > 4096 {
		return "", badRequest("message is too long")
	}
	return plain, nil
}

func isHTMLTag(name string) bool {
	switch name {
	case "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span",
		"tg-spoiler", "a", "code", "pre", "blockquote", "tg-emoji":
		return true
	}
	return false
}

// renderHTML follows Telegram's HTML parser closely enough to reject what
// it rejects: unknown tags (most often an unescaped '<' in interpolated
// text) and unbalanced tags. An '&' that starts no known entity is kept
// literally, as Telegram does.
func renderHTML(s string) (string, error) {
	var out strings.Builder
	var open []string
	for i := 0; i < len(s); {
		switch s[i] {
		case '&':
			if r, n := htmlEntity(s[i:]); n > 0 {
				out.WriteRune(r)
				i += n
				continue
			}
			out.WriteByte('&')
			i++
		case '<':
			start := i
			i++
			closing := i < len(s) && s[i] == '/'
			if closing {
				i++
			}
			j := i
			for j < len(s) && (isASCIIAlnum(s[j]) || s[j] == '-') {
				j++
			}
			name := strings.ToLower(s[i:j])
			if !closing {
				if !isHTMLTag(name) {
					//lint:ignore ST1005 the fake answers with Telegram's own error text, byte for byte
					return "", fmt.Errorf("Unsupported start tag %q at byte offset %d", name, start)
				}
				// Skip attributes; quoted values may contain '>'.
				for j < len(s) && s[j] != '>' {
					if q := s[j]; q == '"' || q == '\'' {
						j++
						for j < len(s) && s[j] != q {
							j++
						}
					}
					j++
				}
				if j >= len(s) {
					//lint:ignore ST1005 the fake answers with Telegram's own error text, byte for byte
					return "", fmt.Errorf("Unclosed start tag at byte offset %d", start)
				}
				open = append(open, name)
				i = j + 1
				continue
			}
			for j < len(s) && s[j] == ' ' {
				j++
			}
			if j >= len(s) || s[j] != '>' {
				//lint:ignore ST1005 the fake answers with Telegram's own error text, byte for byte
				return "", fmt.Errorf("Unclosed end tag at byte offset %d", start)
			}
			if len(open) == 0 {
				//lint:ignore ST1005 the fake answers with Telegram's own error text, byte for byte
				return "", fmt.Errorf("Unexpected end tag at byte offset %d", start)
			}
			if top := open[len(open)-1]; top != name {
				//lint:ignore ST1005 the fake answers with Telegram's own error text, byte for byte
				return "", fmt.Errorf("Unmatched end tag at byte offset %d, expected \"</%s>\", found \"</%s>\"", start, top, name)
			}
			open = open[:len(open)-1]
			i = j + 1
		default:
			out.WriteByte(s[i])
			i++
		}
	}
	if len(open) > 0 {
		//lint:ignore ST1005 the fake answers with Telegram's own error text, byte for byte
		return "", fmt.Errorf("Can't find end tag corresponding to start tag %q", open[len(open)-1])
	}
	return out.String(), nil
}

// htmlEntity decodes the entities Telegram supports at the start of s and
// returns the rune and its length, or n == 0.
func htmlEntity(s string) (r rune, n int) {
	end := strings.IndexByte(s, ';')
	if end < 2 || end > 10 {
		return 0, 0
	}
	name := s[1:end]
	switch name {
	case "lt":
		return '<', end + 1
	case "gt":
		return '>', end + 1
	case "amp":
		return '&', end + 1
	case "quot":
		return '"', end + 1
	}
	if name[0] != '#' || len(name) < 2 {
		return 0, 0
	}
	base, digits := 10, name[1:]
	if digits[0] == 'x' || digits[0] == 'X' {
		base, digits = 16, digits[1:]
	}
	v, err := strconv.ParseUint(digits, base, 32)
	if err != nil || v == 0 || !utf8.ValidRune(rune(v)) {
		return 0, 0
	}
	return rune(v), end + 1
}

func isASCIIAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isCommandChar(c byte) bool { return isASCIIAlnum(c) || c == '_' }

// commandEntities marks a leading /command[@bot] the way Telegram does for
// incoming messages; clients rely on the entity, not the slash, to detect
// commands.
func commandEntities(text string) []apiEntity {
	if !strings.HasPrefix(text, "/") {
		return nil
	}
	n := 1
	for n < len(text) && isCommandChar(text[n]) {
		n++
	}
	if n == 1 {
		return nil
	}
	if n < len(text) && text[n] == '@' {
		m := n + 1
		for m < len(text) && isCommandChar(text[m]) {
			m++
		}
		if m > n+1 {
			n = m
		}
	}
	// Command characters are ASCII, so bytes equal UTF-16 code units here.
	return []apiEntity{{Type: "bot_command", Offset: 0, Length: n}}
}
