"""tools/layercheck.py: droverd's source stays in layers.

Each test builds a small source tree in tmp_path (a LAYERS file and a few
.c/.h files), runs the checker on it the way `make layers` does, and checks
its exit status and its exact output.
"""
import os
import subprocess
import sys

import pytest

CHECKER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       '..', '..', 'tools', 'layercheck.py')

LAYERS = """\
# test layers
../lib   0  shared
runtime  0  the runtime
mech     1  mechanisms
policy   2  service policy
top      3  the daemon
"""

UP_WHY = ('a lower layer never names a higher one; it reports upward through a '
          'callback table the top sets, or through return values and parameters')


def make_tree(root, files, layers=LAYERS):
    """root/lib and root/daemon with its LAYERS; files maps a path under
    root/daemon (or ../lib/...) to its text."""
    daemon = root / 'daemon'
    for d in ('lib', 'daemon/runtime', 'daemon/mech', 'daemon/policy', 'daemon/top'):
        (root / d).mkdir(parents=True, exist_ok=True)
    (daemon / 'LAYERS').write_text(layers)
    for path, text in files.items():
        (daemon / path).write_text(text)
    return daemon


def run(daemon, *args):
    """Run the checker from daemon's parent with a relative SRC_DAEMON_DIR,
    as the Makefile does from the top of the tree."""
    return subprocess.run([sys.executable, CHECKER, *args, 'daemon'],
                          cwd=daemon.parent, capture_output=True, text=True, timeout=30)


def clean_files():
    return {
        '../lib/buf.h': '#pragma once\n',
        '../lib/buf.c': '#include "buf.h"\n',
        'runtime/loop.h': '#pragma once\n#include <stdint.h>\n',
        'runtime/loop.c': '#include "loop.h"\n#include "buf.h"\n',
        'mech/records.h': '#pragma once\n#include "loop.h"\n',
        'mech/proc.h': '#pragma once\n#include "records.h"\n',
        'mech/proc.c': '#include "proc.h"\n#include "loop.h"\n',
        'policy/service.h': '#pragma once\n#include "records.h"\n',
        'policy/service.c': '#include "service.h"\n#include "proc.h"\n',
        'top/main.c': '#include "service.h"\n#include "proc.h"\n#include "loop.h"\n',
    }


def test_clean_tree_passes_with_the_summary_line(tmp_path):
    daemon = make_tree(tmp_path, clean_files())
    r = run(daemon)
    assert (r.returncode, r.stderr) == (0, '')
    assert r.stdout == ('layers: 10 files in 4 layers, no upward include, '
                        'largest include cycle 0 modules\n')


def test_upward_include_fails_naming_file_line_both_layers_and_header(tmp_path):
    files = clean_files()
    files['mech/reap.c'] = ('/* reap.c */\n#include <signal.h>\n#include "proc.h"\n'
                            '#include "service.h"\n')
    daemon = make_tree(tmp_path, files)
    r = run(daemon)
    assert r.returncode == 1
    assert r.stdout == ''
    assert r.stderr == ('daemon/mech/reap.c:4: includes policy/service.h (layer 2 policy) '
                        'from layer 1 mech: ' + UP_WHY + '\nlayers: 1 error\n')


def test_every_upward_include_is_reported_not_only_the_first(tmp_path):
    files = clean_files()
    files['runtime/sink.c'] = '#include "records.h"\n#include "service.h"\n'
    files['../lib/buf.c'] = '#include "buf.h"\n#include "loop.h"\n#include "state.h"\n'
    files['top/state.h'] = '#pragma once\n'
    daemon = make_tree(tmp_path, files)
    r = run(daemon)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        'lib/buf.c:3: includes top/state.h (layer 3 top) from layer 0 ../lib: ' + UP_WHY,
        'daemon/runtime/sink.c:1: includes mech/records.h (layer 1 mech) from layer 0 runtime: '
        + UP_WHY,
        'daemon/runtime/sink.c:2: includes policy/service.h (layer 2 policy) from layer 0 '
        'runtime: ' + UP_WHY,
        'layers: 3 errors',
    ]


def test_same_layer_and_downward_includes_pass(tmp_path):
    files = clean_files()
    # same layer (mech -> mech, and runtime -> ../lib, both level 0) and
    # down three levels (top -> runtime, top -> ../lib)
    files['mech/reap.c'] = '#include "proc.h"\n#include "records.h"\n'
    files['runtime/sink.c'] = '#include "buf.h"\n'
    files['top/state.c'] = '#include "loop.h"\n#include "buf.h"\n#include "service.h"\n'
    daemon = make_tree(tmp_path, files)
    r = run(daemon)
    assert (r.returncode, r.stderr) == (0, '')
    assert r.stdout.startswith('layers: 13 files in 4 layers, no upward include,')


def cycle_files(n):
    """n modules of one layer, each including the next: one cycle of n."""
    files = clean_files()
    for i in range(n):
        files['policy/m%d.h' % i] = '#pragma once\n'
        files['policy/m%d.c' % i] = '#include "m%d.h"\n#include "m%d.h"\n' % (i, (i + 1) % n)
    return files


def test_cycle_of_four_modules_fails(tmp_path):
    daemon = make_tree(tmp_path, cycle_files(4))
    r = run(daemon)
    assert r.returncode == 1
    assert r.stderr == ('include cycle of 4 modules (more than 3): '
                        'policy/m0, policy/m1, policy/m2, policy/m3\nlayers: 1 error\n')


def test_cycle_of_three_modules_passes_and_is_counted(tmp_path):
    daemon = make_tree(tmp_path, cycle_files(3))
    r = run(daemon)
    assert (r.returncode, r.stderr) == (0, '')
    assert r.stdout == ('layers: 16 files in 4 layers, no upward include, '
                        'largest include cycle 3 modules\n')
    r = run(daemon, '--verbose')
    assert r.returncode == 0
    assert r.stdout.splitlines()[0] == ('note: include cycle of 3 modules (at most 3 allowed): '
                                        'policy/m0, policy/m1, policy/m2')


def test_max_cycle_sets_the_limit(tmp_path):
    daemon = make_tree(tmp_path, cycle_files(3))
    r = run(daemon, '--max-cycle', '2')
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == ('include cycle of 3 modules (more than 2): '
                                        'policy/m0, policy/m1, policy/m2')
    daemon = make_tree(tmp_path / 'b', cycle_files(4))
    r = run(daemon, '--max-cycle', '4')
    assert r.returncode == 0
    assert r.stdout.endswith('largest include cycle 4 modules\n')


def test_a_c_file_and_its_header_are_one_module(tmp_path):
    # a.c -> b.h, b.c -> a.h: a cycle of the two modules a and b, though no
    # single file includes itself back
    files = clean_files()
    files.update({'mech/a.h': '', 'mech/a.c': '#include "b.h"\n',
                  'mech/b.h': '', 'mech/b.c': '#include "a.h"\n'})
    daemon = make_tree(tmp_path, files)
    r = run(daemon, '--max-cycle', '1')
    assert r.returncode == 1
    assert r.stderr == 'include cycle of 2 modules (more than 1): mech/a, mech/b\nlayers: 1 error\n'


def test_file_outside_any_declared_directory_fails(tmp_path):
    files = clean_files()
    daemon = make_tree(tmp_path, files)
    (daemon / 'stray.c').write_text('#include "loop.h"\n')
    (daemon / 'mech' / 'sub').mkdir()
    (daemon / 'mech' / 'sub' / 'deep.h').write_text('')
    (daemon / 'notes.txt').write_text('not source\n')
    r = run(daemon)
    assert r.returncode == 1
    assert r.stderr == ('daemon/stray.c: not in a layer directory declared in daemon/LAYERS\n'
                        'daemon/mech/sub/deep.h: not in a layer directory declared in daemon/LAYERS\n'
                        'layers: 2 errors\n')


def test_duplicate_header_name_fails(tmp_path):
    files = clean_files()
    files['top/proc.h'] = '#pragma once\n'
    daemon = make_tree(tmp_path, files)
    r = run(daemon)
    assert r.returncode == 1
    assert r.stderr == ('daemon/mech/proc.h: header name proc.h is also daemon/top/proc.h: '
                        'includes are found by name (one -I per layer directory), so a header '
                        'name must be unique across the directories of LAYERS\nlayers: 1 error\n')


def test_include_of_a_missing_header_fails(tmp_path):
    files = clean_files()
    files['mech/proc.c'] = '#include "proc.h"\n\n#  include   "gone.h"\n'
    daemon = make_tree(tmp_path, files)
    r = run(daemon)
    assert r.returncode == 1
    assert r.stderr == ('daemon/mech/proc.c:3: includes "gone.h", which is in no directory '
                        'declared in LAYERS (a missing file, or one from outside droverd\'s '
                        'layers)\nlayers: 1 error\n')


def test_spaced_directive_is_an_include(tmp_path):
    files = clean_files()
    files['mech/proc.c'] = '#include "proc.h"\n  #  include\t"service.h"\n'
    daemon = make_tree(tmp_path, files)
    r = run(daemon)
    assert r.returncode == 1
    assert r.stderr.startswith('daemon/mech/proc.c:2: includes policy/service.h (layer 2 policy) '
                               'from layer 1 mech: ')


def test_commented_out_include_is_ignored(tmp_path):
    files = clean_files()
    files['mech/proc.c'] = ('#include "proc.h"\n'
                            '/* no longer:\n#include "service.h"\n*/\n'
                            '// #include "service.h"\n'
                            'static const char *s = "/*";\n'
                            '#include "loop.h"\n'
                            'static const char c = \'"\'; /* a string\'s end is not a comment\'s */\n')
    daemon = make_tree(tmp_path, files)
    r = run(daemon)
    assert (r.returncode, r.stderr) == (0, '')
    # the include after the string holding "/*" is still seen
    files['mech/proc.c'] = files['mech/proc.c'].replace('"loop.h"', '"top_only.h"')
    files['top/top_only.h'] = ''
    daemon = make_tree(tmp_path / 'b', files)
    r = run(daemon)
    assert r.returncode == 1
    assert r.stderr.startswith('daemon/mech/proc.c:7: includes top/top_only.h (layer 3 top) ')


@pytest.mark.parametrize('line, error', [
    ('mech', 'expected "DIR LEVEL description" with LEVEL a number 0, 1, ...: mech'),
    ('mech one  mechanisms', 'expected "DIR LEVEL description" with LEVEL a number 0, 1, ...: '
     'mech one  mechanisms'),
    ('nosuch 1  gone', 'daemon/nosuch: no such directory'),
    ('mech 2  again', 'mech is declared twice (first as layer 1 mech)'),
])
def test_bad_layers_line_fails(tmp_path, line, error):
    daemon = make_tree(tmp_path, clean_files(), LAYERS + line + '\n')
    r = run(daemon)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == 'daemon/LAYERS:7: ' + error


def test_layer_of_a_file_comes_from_layers(tmp_path):
    # the same tree passes or fails as LAYERS alone says: mech above policy
    # turns policy's include of proc.h into an upward one
    swapped = LAYERS.replace('mech     1', 'mech     3')
    daemon = make_tree(tmp_path, clean_files(), swapped)
    r = run(daemon)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == ('daemon/policy/service.c:2: includes mech/proc.h '
                                        '(layer 3 mech) from layer 2 policy: ' + UP_WHY)
