#!/usr/bin/python3
"""Keep droverd's source in layers: no #include goes up a layer.

usage: tools/layercheck.py [--max-cycle N] [--verbose] SRC_DAEMON_DIR

SRC_DAEMON_DIR/LAYERS is the one place that says which directory is which
layer: a line "DIR LEVEL description" per directory, '#' starts a comment.
DIR is relative to SRC_DAEMON_DIR and may lie outside it (`../lib 0 ...`):
files there are checked too and their headers can be included.

Checked:
- every .c and .h file under SRC_DAEMON_DIR lies directly in a declared
  directory (a subdirectory must be declared itself);
- every `#include "name"` (not <name>; not inside a comment) names a file
  of a declared directory, found by its base name as the compiler finds it
  with one -I per directory; a header name is therefore unique across them;
- no file includes a header of a higher level than its own;
- no include cycle between modules (foo.c and foo.h are the module foo; an
  edge A -> B when a file of A includes a file of B) holds more than
  --max-cycle modules (default 3).

Exit status: 0 and one summary line when all holds; 1 with every error
found (stderr) otherwise; 2 on a usage error. Python 3 standard library only.
"""
import argparse
import os
import re
import sys

SOURCE_EXT = ('.c', '.h')
INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"\n]+)"')


class Layer:
    """One declared directory: its name as written, its level, what it is."""

    def __init__(self, name, level, what, path):
        self.name = name      # as written in LAYERS, normalised ("mech", "../lib")
        self.level = level
        self.what = what
        self.path = path      # on disk: SRC_DAEMON_DIR joined with name

    def label(self):
        return 'layer %d %s' % (self.level, self.name)


class Source:
    """One .c or .h file of a layer."""

    def __init__(self, layer, fname):
        self.layer = layer
        self.fname = fname
        self.path = os.path.normpath(os.path.join(layer.path, fname))
        self.module = (layer.name, os.path.splitext(fname)[0])

    def short(self):
        """The name relative to SRC_DAEMON_DIR, as in "policy/service.h"."""
        if self.layer.name == '.':
            return self.fname
        return self.layer.name + '/' + self.fname


def module_name(module):
    layer, stem = module
    return stem if layer == '.' else layer + '/' + stem


def read_layers(top, errors):
    """The layers SRC_DAEMON_DIR/LAYERS declares, in the order written."""
    lpath = os.path.join(top, 'LAYERS')
    try:
        with open(lpath, encoding='utf-8') as f:
            lines = f.read().split('\n')
    except OSError as e:
        errors.append('%s: cannot read the layer declarations: %s' % (lpath, e.strerror))
        return []
    layers = {}
    for num, line in enumerate(lines, 1):
        words = line.split('#', 1)[0].split(None, 2)
        if not words:
            continue
        where = '%s:%d' % (lpath, num)
        if len(words) < 2 or not re.fullmatch(r'[0-9]+', words[1]):
            errors.append('%s: expected "DIR LEVEL description" with LEVEL a number '
                          '0, 1, ...: %s' % (where, line.strip()))
            continue
        name = os.path.normpath(words[0])
        if os.path.isabs(name):
            errors.append('%s: %s: a layer directory is relative to %s' % (where, words[0], top))
            continue
        if name in layers:
            errors.append('%s: %s is declared twice (first as %s)'
                          % (where, name, layers[name].label()))
            continue
        path = os.path.normpath(os.path.join(top, name))
        if not os.path.isdir(path):
            errors.append('%s: %s: no such directory' % (where, path))
            continue
        layers[name] = Layer(name, int(words[1]), words[2].strip() if len(words) > 2 else '', path)
    if not layers and not errors:
        errors.append('%s: declares no layer' % lpath)
    return list(layers.values())


def find_sources(top, layers, errors):
    """Every .c and .h file of the layers; an error for each one under top
    that lies in no declared directory."""
    by_path = {os.path.realpath(layer.path): layer for layer in layers}
    sources = []
    for layer in layers:
        for fname in sorted(os.listdir(layer.path)):
            if fname.endswith(SOURCE_EXT) and os.path.isfile(os.path.join(layer.path, fname)):
                sources.append(Source(layer, fname))
    for dirpath, dirnames, fnames in os.walk(top):
        dirnames.sort()
        if os.path.realpath(dirpath) in by_path:
            continue
        for fname in sorted(fnames):
            if fname.endswith(SOURCE_EXT):
                errors.append('%s: not in a layer directory declared in %s'
                              % (os.path.normpath(os.path.join(dirpath, fname)),
                                 os.path.join(top, 'LAYERS')))
    return sources


def index_names(sources, errors):
    """Base name -> the sources of that name; an error for a header name
    that more than one layer directory holds."""
    names = {}
    for src in sources:
        names.setdefault(src.fname, []).append(src)
    for fname in sorted(names):
        same = names[fname]
        if len(same) > 1 and fname.endswith('.h'):
            errors.append('%s: header name %s is also %s: includes are found by name '
                          '(one -I per layer directory), so a header name must be unique '
                          'across the directories of LAYERS'
                          % (same[0].path, fname, ', '.join(s.path for s in same[1:])))
    return names


def strip_comments(text):
    """text with every comment blanked out (newlines kept, so line numbers
    hold); string and character literals are skipped whole."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        two = text[i:i + 2]
        if two == '/*':
            end = text.find('*/', i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r'[^\n]', ' ', text[i:end]))
            i = end
        elif two == '//':
            end = text.find('\n', i)
            end = n if end < 0 else end
            out.append(' ' * (end - i))
            i = end
        elif c in '"\'':
            j = i + 1
            while j < n and text[j] != c and text[j] != '\n':
                j += 2 if text[j] == '\\' else 1
            end = min(j + 1, n)
            out.append(text[i:end])
            i = end
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def includes(src, errors):
    """(line number, name) of each #include "name" of src."""
    try:
        with open(src.path, encoding='utf-8', errors='replace') as f:
            text = f.read()
    except OSError as e:
        errors.append('%s: cannot read: %s' % (src.path, e.strerror))
        return []
    found = []
    for num, line in enumerate(strip_comments(text).split('\n'), 1):
        m = INCLUDE_RE.match(line)
        if m:
            found.append((num, m.group(1)))
    return found


def check_includes(sources, names, errors):
    """Resolve every include; an error for one that names no file of the
    layers and for one that goes up a layer. Returns the module graph."""
    graph = {src.module: set() for src in sources}
    edges = {}   # (from module, to module) -> the first "path:line" making it
    for src in sources:
        for num, name in includes(src, errors):
            where = '%s:%d' % (src.path, num)
            found = names.get(os.path.basename(name), [])
            if not found:
                errors.append('%s: includes "%s", which is in no directory declared in LAYERS '
                              '(a missing file, or one from outside droverd\'s layers)'
                              % (where, name))
                continue
            if len(found) > 1:
                if not name.endswith('.h'):
                    errors.append('%s: includes "%s", which more than one layer directory holds: %s'
                                  % (where, name, ', '.join(s.path for s in found)))
                continue   # a duplicate header is reported once, by index_names
            dst = found[0]
            if dst.layer.level > src.layer.level:
                errors.append('%s: includes %s (%s) from %s: a lower layer never names a '
                              'higher one; it reports upward through a callback table the '
                              'top sets, or through return values and parameters'
                              % (where, dst.short(), dst.layer.label(), src.layer.label()))
            if dst.module != src.module:
                graph[src.module].add(dst.module)
                edges.setdefault((src.module, dst.module), where)
    return graph, edges


def tarjan(graph):
    """The strongly connected components of graph (Tarjan), iteratively."""
    index, low, on_stack = {}, {}, set()
    stack, sccs = [], []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                scc = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    scc.append(member)
                    if member == node:
                        break
                sccs.append(sorted(scc, key=module_name))
    return sccs


def check_cycles(graph, edges, max_cycle, verbose, errors, notes):
    """An error for each include cycle of more than max_cycle modules.
    Returns the size of the largest cycle (0: none)."""
    largest = 0
    for scc in sorted(tarjan(graph), key=lambda s: (-len(s), module_name(s[0]))):
        if len(scc) < 2:
            continue
        largest = max(largest, len(scc))
        members = ', '.join(module_name(m) for m in scc)
        if len(scc) > max_cycle:
            msg = ('include cycle of %d modules (more than %d): %s'
                   % (len(scc), max_cycle, members))
            if verbose:
                inside = set(scc)
                msg += ''.join('\n  %s -> %s  (%s)' % (module_name(a), module_name(b), where)
                               for (a, b), where in sorted(edges.items())
                               if a in inside and b in inside)
            errors.append(msg)
        elif verbose:
            notes.append('note: include cycle of %d modules (at most %d allowed): %s'
                         % (len(scc), max_cycle, members))
    return largest


def main(argv):
    parser = argparse.ArgumentParser(
        prog='layercheck.py',
        description='Fail on an #include that goes up a layer of SRC_DAEMON_DIR/LAYERS, '
                    'or on an include cycle of more than --max-cycle modules.')
    parser.add_argument('--max-cycle', type=int, default=3, metavar='N',
                        help='the most modules an include cycle may hold (default 3)')
    parser.add_argument('--verbose', '-v', action='store_true',
                        help='also list the allowed cycles, and the includes inside each cycle too large')
    parser.add_argument('top', metavar='SRC_DAEMON_DIR')
    args = parser.parse_args(argv)
    if args.max_cycle < 1:
        parser.error('--max-cycle must be 1 or more')
    if not os.path.isdir(args.top):
        parser.error('%s: no such directory' % args.top)
    top = os.path.normpath(args.top)

    errors, notes = [], []
    layers = read_layers(top, errors)
    sources = find_sources(top, layers, errors)
    names = index_names(sources, errors)
    graph, edges = check_includes(sources, names, errors)
    largest = check_cycles(graph, edges, args.max_cycle, args.verbose, errors, notes)

    for note in notes:
        print(note)
    if errors:
        for err in errors:
            print(err, file=sys.stderr)
        print('layers: %d error%s' % (len(errors), '' if len(errors) == 1 else 's'),
              file=sys.stderr)
        return 1
    print('layers: %d files in %d layers, no upward include, largest include cycle %d modules'
          % (len(sources), len({layer.level for layer in layers}), largest))
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
