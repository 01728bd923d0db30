# zsh -f zsh-complete.zsh FPATHDIR 'command line': prints, one per line, every candidate
# zsh's completion system (compinit, the real one) offers at the end of the line, as if
# TAB were pressed there. An interactive zsh runs in a pseudo-terminal (zpty); compadd
# is wrapped to print what it adds. Markers are spelled split ("<"hit">") so the
# terminal's echo of these lines never matches them.
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "fpath=(${(q)1} \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z 'compadd () {
  [[ ${@[(I)-(O|A|D)]} -ne 0 ]] && { builtin compadd "$@"; return }
  local -a __hits
  builtin compadd -O __hits "$@"
  (( $#__hits )) && print -rl -- "<"hit">"${^__hits}
  builtin compadd "$@"
}'
zpty -w z 'zstyle ":completion:*" list-grouped false; zstyle ":completion:*" insert-tab false'
zpty -w z 'finish () { print "<"done">"; exit }'
zpty -w z 'comppostfuncs=(finish)'
zpty -w z "$2"$'\t'
local line
while zpty -r z line; do
  [[ $line == *'<done>'* ]] && break
  [[ $line == *'<hit>'* ]] && print -r -- "${${${line##*<hit>}%$'\n'}%$'\r'}"
done
zpty -d z
