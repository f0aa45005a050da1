package bot

import (
	"embed"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

// Lang is a language doorman speaks in the chat. The log, the terminal and
// `doorman check` stay English.
type Lang string

const (
	English Lang = "en"
	German  Lang = "de"
)

// langs are the languages doorman has a catalog for, the default first.
func langs() []Lang { return []Lang{English, German} }

// LangOfCode picks doorman's language for a Telegram language_code (an IETF
// tag such as "de", "de-AT"): German for any German, else English.
func LangOfCode(code string) Lang {
	base, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(code)), "-")
	base, _, _ = strings.Cut(base, "_")
	if base == string(German) {
		return German
	}
	return English
}

// ParseLang reads a language setting: "en", "de", or "" for none.
func ParseLang(s string) (Lang, error) {
	switch l := Lang(strings.ToLower(strings.TrimSpace(s))); l {
	case "", English, German:
		return l, nil
	}
	return "", fmt.Errorf("%q is not a language doorman speaks (en or de)", s)
}

// catalogFiles holds one TOML catalog per language, named after it.
//
//go:embed locales/*.toml
var catalogFiles embed.FS

// Catalog holds every chat text in every language.
type Catalog struct {
	bundle *i18n.Bundle
	words  map[Lang]Words
}

// NewCatalog loads the catalogs built into doorman.
func NewCatalog() (*Catalog, error) {
	bundle := i18n.NewBundle(language.English)
	bundle.RegisterUnmarshalFunc("toml", toml.Unmarshal)
	c := &Catalog{bundle: bundle, words: map[Lang]Words{}}
	for _, l := range langs() {
		if _, err := bundle.LoadMessageFileFS(catalogFiles, path.Join("locales", string(l)+".toml")); err != nil {
			return nil, fmt.Errorf("bot: unable to load the %s chat texts: %w", l, err)
		}
		c.words[l] = Words{lang: l, loc: i18n.NewLocalizer(bundle, string(l))}
	}
	return c, nil
}

// In returns the texts of one language; an unknown one gets English.
func (c *Catalog) In(l Lang) Words {
	if w, ok := c.words[l]; ok {
		return w
	}
	return c.words[English]
}

// Words is the chat text of one language.
type Words struct {
	lang Lang
	loc  *i18n.Localizer
}

// Lang returns the language of the texts.
func (w Words) Lang() Lang { return w.lang }

// T returns the text id with its {{.Name}} fields filled from args, given as
// name, value pairs. Values are put in as they are: HTML must be escaped
// before. A text missing from the catalog comes back as its id, which the
// catalog tests rule out.
func (w Words) T(id string, args ...any) string {
	return w.localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: templateData(args)})
}

// N is T for a text with plural forms, chosen by count, which is also
// {{.Count}}.
func (w Words) N(id string, count int, args ...any) string {
	data := templateData(args)
	data["Count"] = count
	return w.localize(&i18n.LocalizeConfig{MessageID: id, TemplateData: data, PluralCount: count})
}

func (w Words) localize(cfg *i18n.LocalizeConfig) string {
	if w.loc == nil {
		// A Words made without a catalog (a test's, or a path that
		// forgot the audience) speaks English rather than ids; loading
		// the built-in catalog costs a millisecond or so.
		c, err := NewCatalog()
		if err != nil || c.words[English].loc == nil {
			return cfg.MessageID
		}
		w = c.words[English]
	}
	s, err := w.loc.Localize(cfg)
	var missing *i18n.MessageNotFoundErr
	if err != nil && (s == "" || !errors.As(err, &missing)) {
		return cfg.MessageID
	}
	return s
}

func templateData(args []any) map[string]any {
	data := make(map[string]any, len(args)/2+1)
	for i := 0; i+1 < len(args); i += 2 {
		if name, ok := args[i].(string); ok {
			data[name] = args[i+1]
		}
	}
	return data
}
