"""explorer/ui/deferred.py: a widget built when first used, steps run one per event-loop turn with
callbacks after them, and a ViewBox whose context menu is built on the first right click."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from explorer.ui.deferred import DeferredWidget, IdleBuilder, LazyMenuViewBox


def test_a_deferred_widget_is_built_once_on_first_use(qtbot):
    made = []

    def factory():
        made.append(QLabel("built"))
        return made[-1]

    host = QWidget()
    qtbot.addWidget(host)
    part = DeferredWidget(factory)
    QVBoxLayout(host).addWidget(part)
    host.show()
    assert not part.built and made == [] and part.findChildren(QLabel) == []
    label = part.widget()
    assert part.built and part.widget() is label and made == [label]
    assert label.parent() is part
    qtbot.waitUntil(label.isVisible, timeout=5000)        # Qt shows a child added to a shown layout


def test_the_builder_runs_one_step_per_turn_then_its_callbacks(qtbot):
    builder = IdleBuilder()
    ran = []
    builder.add(lambda: ran.append(1), lambda: ran.append(2))
    builder.after(lambda: ran.append("after"))
    assert ran == [] and not builder.done           # nothing runs inside add()
    qtbot.waitUntil(lambda: builder.done and "after" in ran, timeout=5000)
    assert ran == [1, 2, "after"]
    builder.after(lambda: ran.append("now"))          # nothing left: at once
    assert ran[-1] == "now"

    builder.add(lambda: ran.append(3), lambda: builder.add(lambda: ran.append(5)), lambda: ran.append(4))
    builder.after(lambda: ran.append("end"))
    qtbot.waitUntil(lambda: "end" in ran, timeout=5000)
    assert ran[-4:] == [3, 4, 5, "end"]              # a step may queue more; callbacks wait for them

    builder.add(lambda: ran.append("never"))
    builder.after(lambda: ran.append("never after"))
    builder.stop()
    qtbot.wait(30)
    assert "never" not in ran and "never after" not in ran and builder.done


def test_a_lazy_viewbox_builds_pyqtgraphs_menu_on_the_first_right_click(qtbot):
    box = LazyMenuViewBox(lockAspect=True)
    assert box.menu is None and box.menuEnabled()
    menu = box.getMenu(None)
    assert type(menu).__name__ == "ViewBoxMenu" and box.getMenu(None) is menu
    plain = pg.ViewBox()                     # pyqtgraph's own box, with the menu built up front
    assert [a.text() for a in box.getContextMenus(None)] == [a.text() for a in plain.menu.actions()]
    box.setMenuEnabled(False)
    assert box.menu is None and box.getContextMenus(None) == []
    box.setMenuEnabled(True)
    assert box.menu is None and box.getMenu(None) is not None     # built again only when asked for
    assert LazyMenuViewBox(enableMenu=False).getMenu(None) is None


def test_a_deferred_feature_view_lays_out_as_the_eager_one(qtbot):
    """The places keep the stretch factors the splitters gave them once the plots are in (copying
    the plot's whole size policy once dropped them: the statistics took two thirds of the height)."""
    import torch
    from explorer.core.engine import LayerResult
    from explorer.ui.feature_view import FeatureView
    out = torch.rand(1, 16, 40, 40)
    sizes = []
    for deferred in (False, True):
        view = FeatureView(deferred=deferred)
        qtbot.addWidget(view)
        for step in view.build_steps():
            step()
        view.resize(1000, 700)
        view.show()
        view.set_layer(LayerResult(1, "conv", "Conv2d", True, input_shape=None, output_shape=tuple(out.shape),
                                   params=0, output=out))
        assert view.wait_until_ready(30_000)
        qtbot.wait(20)
        sizes.append((view.splitter.sizes(), view.maps_splitter.sizes()))
    assert sizes[0] == sizes[1]
