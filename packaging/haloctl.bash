# SPDX-License-Identifier: MIT
# bash completion for haloctl(8).  test_packaging.py checks that every command
# of `haloctl --help` is offered here.

_haloctl_objects()
{
    # Names from halod (haloctl names KIND), when it answers within a second; nothing otherwise.
    local sock=()
    [[ -n $_haloctl_socket ]] && sock=(--socket "$_haloctl_socket")
    haloctl "${sock[@]}" --timeout 1 names "$1" 2>/dev/null
}

_haloctl_txids()
{
    # The ids of the transactions in flight: the first column of haloctl txn.
    local sock=() id rest
    [[ -n $_haloctl_socket ]] && sock=(--socket "$_haloctl_socket")
    haloctl "${sock[@]}" --timeout 1 txn 2>/dev/null | while read -r id rest; do
        [[ $id == *.* ]] && echo "$id"
    done
}

_haloctl()
{
    # Words split on blanks only (bash also splits on ':', which su:NAME has).
    local line=${COMP_LINE:0:COMP_POINT} words cur prev cword
    read -ra words <<<"$line"
    if [[ $line == *[[:blank:]] ]]; then words+=(""); fi
    cword=$((${#words[@]} - 1))
    cur=${words[cword]}
    prev=${words[cword - 1]}
    local commands="status switchover lock unlock restart repair stop-halod shutdown
        eam-start eam-stop failvec recover names registrations log-level txn reload admin events event-channels sim cdb ckpt ha"
    local options="--socket --json --follow --force --timeout --help"
    local admin_ops="lock shutdown unlock lock-instantiation unlock-instantiation
        restart repaired si-swap sg-adjust switchover"

    local i cmd="" sub="" _haloctl_socket=""
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
        -s | --socket) _haloctl_socket=${words[i + 1]}; ((i++)) ;;
        -t | --timeout | --token | --ha-socket | --dir | --nodes | --etcd-members | --config) ((i++)) ;;
        -*) ;;
        *) if [[ -z $cmd ]]; then cmd=${words[i]}; elif [[ -z $sub ]]; then sub=${words[i]}; fi ;;
        esac
    done

    case $prev in
    -s | --socket | --config | --ha-socket) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --dir) COMPREPLY=($(compgen -d -- "$cur")); return ;;
    -t | --timeout | --token | --nodes | --etcd-members) return ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$options" -- "$cur"))
        return
    fi
    case $cmd in
    "") COMPREPLY=($(compgen -W "$commands" -- "$cur")) ;;
    admin)
        if [[ -z $sub ]]; then
            COMPREPLY=($(compgen -W "$admin_ops" -- "$cur"))
        else
            local kind=${cur%%:*} o objs=()
            if [[ $cur == *:* ]]; then
                for o in $(_haloctl_objects "$kind"); do objs+=("$kind:$o"); done
                COMPREPLY=($(compgen -W "${objs[*]}" -- "$cur"))
                # bash replaces only what follows the last ':' of the word.
                COMPREPLY=("${COMPREPLY[@]#"${cur%:*}":}")
            else
                COMPREPLY=($(compgen -W "su: sg: si: node: comp:" -- "$cur"))
                compopt -o nospace 2>/dev/null
            fi
        fi ;;
    names) [[ -z $sub ]] && COMPREPLY=($(compgen -W "node sg su si comp" -- "$cur")) ;;
    registrations) [[ -z $sub ]] && COMPREPLY=($(compgen -W "entrypoint" -- "$cur")) ;;
    log-level)
        [[ -z $sub ]] && COMPREPLY=($(compgen -W "error warning notice info debug main= amf= link= supervisor=
            store= cluster= comp: stream:" -- "$cur"))
        [[ -n $sub && $sub == comp:* || $sub == stream:* ]] && COMPREPLY=($(compgen -W "emergency alert critical
            error warning notice info debug trace default" -- "$cur"))
        [[ $cur == *= || $cur == *: ]] && compopt -o nospace 2>/dev/null ;;
    txn)
        [[ -z $sub ]] && COMPREPLY=($(compgen -W "abort forget $(_haloctl_txids)" -- "$cur"))
        [[ $sub == forget || $sub == abort ]] && COMPREPLY=($(compgen -W "$(_haloctl_txids)" -- "$cur")) ;;
    sim) [[ -z $sub ]] && COMPREPLY=($(compgen -W "up down status start-node" -- "$cur")) ;;
    cdb) [[ -z $sub ]] && COMPREPLY=($(compgen -W "get list set delete watch" -- "$cur")) ;;
    ha) [[ -z $sub ]] && COMPREPLY=($(compgen -W "status beprimary besecondary berelay benone secondary-dead notifications" -- "$cur")) ;;
    switchover) [[ -z $sub ]] && COMPREPLY=($(compgen -W "$(_haloctl_objects si)" -- "$cur")) ;;
    lock | unlock | repair) [[ -z $sub ]] && COMPREPLY=($(compgen -W "$(_haloctl_objects su)" -- "$cur")) ;;
    restart | eam-start | eam-stop | failvec | recover)
        [[ -z $sub ]] && COMPREPLY=($(compgen -W "$(_haloctl_objects comp)" -- "$cur")) ;;
    esac
}
complete -F _haloctl haloctl
