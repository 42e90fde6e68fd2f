from engine.tree import Trie, flatten


def test_rows_sharing_a_prefix_share_nodes():
    trie = Trie.rooted(100)
    a = trie.add_row([1, 2, 3], "drafter1")
    b = trie.add_row([1, 2, 4], "vp")
    c = trie.add_row([1, 5], "vp")
    assert a[:2] == b[:2] and c[0] == a[0]
    assert len(trie) == 1 + 5
    assert trie.sources[a[2]] == "drafter1" and trie.sources[b[2]] == "vp"
    assert trie.path_to(b[2]) == [0, a[0], a[1], b[2]]
    assert trie.depths()[b[2]] == 3


def test_flatten_gives_each_node_the_branches_through_it():
    trie = Trie.rooted(100)
    a = trie.add_row([1, 2, 3], "d")
    b = trie.add_row([1, 2, 4], "d")
    c = trie.add_row([7], "d")
    flat = flatten(trie)
    assert flat.tokens == [100, 1, 2, 3, 4, 7]
    assert flat.depths == [0, 1, 2, 3, 3, 1]
    leaves = sorted(flat.leaf_seq, key=flat.leaf_seq.get)
    assert leaves == [a[2], b[2], c[0]]
    assert flat.seq_ids[0] == [0, 1, 2]
    assert flat.seq_ids[a[0]] == [0, 1] and flat.seq_ids[a[1]] == [0, 1]
    assert flat.seq_ids[a[2]] == [0] and flat.seq_ids[b[2]] == [1] and flat.seq_ids[c[0]] == [2]


def test_node_budget_truncates_rows():
    trie = Trie.rooted(0, max_nodes=4)
    assert trie.add_row([1, 2, 3, 4, 5], "d") == [1, 2, 3]
    assert trie.add_row([1, 2, 9], "d") == [1, 2]  # shared nodes cost nothing, the new one does not fit
    assert len(trie) == 4 and trie.full


def test_chain_has_one_branch():
    trie = Trie.rooted(5)
    trie.add_row([6, 7], "lookup")
    flat = flatten(trie)
    assert flat.seq_ids == [[0], [0], [0]] and trie.leaves() == [2]


def test_within_depth_drops_deep_nodes_only():
    trie = Trie.rooted(0)
    trie.add_row([1, 2, 3], "d1")
    trie.add_row([4], "vp")
    assert trie.within_depth(4) is trie
    cut = trie.within_depth(2)
    assert cut.tokens == [0, 1, 4] and cut.sources == ["target", "d1", "vp"] and cut.parents == [-1, 0, 0]
