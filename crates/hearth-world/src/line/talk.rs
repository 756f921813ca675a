//! Commands and chat: line switches and travel asked of the directory,
//! chat checked, rate-limited, filtered by the game's hook and delivered.

use super::*;

impl Line {
    pub(super) fn command(&mut self, player: PlayerId, command: Command) {
        match command {
            Command::Chat { scope, to, text } => self.chat(player, scope, to, text),
            Command::SwitchLine { line } => {
                if line == self.config.number {
                    self.refuse(
                        player,
                        Refusal::Line,
                        format!("you are already on line {line}"),
                    );
                } else {
                    self.outputs.push(LineOutput::WantsLine { player, line });
                }
            }
            Command::Travel { zone } => {
                if zone == self.config.zone.spec.name {
                    self.refuse(
                        player,
                        Refusal::Travel,
                        format!("you are already in {zone}"),
                    );
                } else {
                    self.outputs.push(LineOutput::WantsZone {
                        player,
                        zone,
                        at: None,
                    });
                }
            }
        }
    }

    pub(super) fn refuse(&mut self, player: PlayerId, about: Refusal, reason: String) {
        self.queue_item(
            player,
            Item::Refused {
                about,
                reason: bounded(reason, wire::MAX_REASON),
            },
        );
    }

    pub(super) fn chat(&mut self, player: PlayerId, scope: ChatScope, to: String, text: String) {
        let Some(p) = self.players.get_mut(&player) else {
            return;
        };
        let name = self.actors[self.index[&p.actor] as usize]
            .props
            .name
            .to_string();
        let checked = check_text(&text).map(str::to_owned).map_err(str::to_owned);
        let checked = checked.and_then(|text| {
            if p.chat.take() {
                Ok(text)
            } else {
                Err("you are sending messages too fast: wait a moment".to_owned())
            }
        });
        let checked = checked.and_then(|text| {
            if scope == ChatScope::Whisper && to.is_empty() {
                return Err("name the player to whisper to".to_owned());
            }
            match self.hook.as_ref().map(|h| h.check(&name, scope, &text)) {
                None | Some(ChatVerdict::Allow) => Ok(text),
                Some(ChatVerdict::Replace(text)) => Ok(bounded(text, wire::MAX_CHAT)),
                Some(ChatVerdict::Refuse(why)) => Err(bounded(why, wire::MAX_REASON)),
            }
        });
        let text = match checked {
            Ok(text) => text,
            Err(reason) => {
                self.stats.chat_refused += 1;
                self.refuse(player, Refusal::Chat, reason);
                return;
            }
        };
        self.stats.chat_sent += 1;
        let item = Item::Chat {
            scope,
            from: name.clone(),
            to: to.clone(),
            text: text.clone(),
        };
        match scope {
            ChatScope::Line | ChatScope::Zone => {
                self.apply(LineInput::Deliver { to: None, item });
                if scope == ChatScope::Zone {
                    self.outputs.push(LineOutput::Chat {
                        from: player,
                        from_name: name,
                        scope,
                        to,
                        text,
                    });
                }
            }
            ChatScope::Whisper => self.outputs.push(LineOutput::Chat {
                from: player,
                from_name: name,
                scope,
                to,
                text,
            }),
            ChatScope::System => {}
        }
    }
}
