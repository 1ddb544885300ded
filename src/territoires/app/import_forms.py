"""Streamlit glue of the Importer page: the upload, checked once per file, with a progress
bar (a UI-support module; reading, validation and writing live in
:mod:`territoires.catalogue.importing`)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st
from streamlit.runtime.uploaded_file_manager import UploadedFile

from territoires.analysis import views
from territoires.app import forms, ui
from territoires.catalogue import importing, model
from territoires.catalogue.auth import User
from territoires.errors import ConflictError, ValidationError

_PLAN = "imp_plan"


def _progress_bar() -> importing.Progress:
    bar = st.progress(0.0, text="Import…")

    def update(fraction: float, text: str) -> None:
        # the text may name the uploaded file: Markdown there would be drawn
        bar.progress(min(max(fraction, 0.0), 1.0), text=views.md_text(text))

    return update


def checked_upload(upload: UploadedFile,
                   data: ui.AppData) -> importing.ImportPlan | None:
    """The plan of ``upload``, checked once per uploaded file (kept in the session until
    written or replaced); None with a French message when the file is refused outright."""
    kept = st.session_state.get(_PLAN)
    if kept is not None and kept[0] == upload.file_id:
        return kept[1]
    if upload.size > importing.MAX_UPLOAD_BYTES:
        st.error(views.md_text(
            f"« {upload.name} » pèse {upload.size / 1e6:.1f} Mo : le site accepte au plus "
            f"{importing.MAX_UPLOAD_BYTES // (1024 * 1024)} Mo par fichier. Découpez-le, "
            "ou demandez à un administrateur l'import en ligne de commande."))
        return None
    suffix = Path(upload.name).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="territoires-import-") as tmp:
        # the upload's own name, so that every message names the file the user sent
        own = Path(upload.name.replace("\\", "/")).name.lstrip(".")
        own = own if own and len(own.encode("utf-8")) <= 200 else f"import{suffix}"
        path = Path(tmp) / own
        path.write_bytes(upload.getbuffer())
        try:
            plan = importing.plan_import(path, ui.contribution_store(), data.index,
                                         file_name=upload.name, progress=_progress_bar())
        except ValidationError as exc:
            plan = importing.ImportPlan(upload.name, model.Catalogue(), exc.problems)
    st.session_state[_PLAN] = (upload.file_id, plan)
    return plan


def confirm(plan: importing.ImportPlan, user: User, comment: str) -> None:
    """Write the plan (all or nothing); its outcome is shown by :func:`forms.flash` on the
    next run, and after a success the uploader starts empty."""

    def run() -> str:
        try:
            message = importing.apply_import(ui.contribution_store(), user, plan,
                                             comment=comment or None,
                                             progress=_progress_bar())
        except ConflictError:
            st.session_state.pop(_PLAN, None)  # fiches changed since: checked again next run
            raise
        st.session_state["imp_upload_n"] = st.session_state.get("imp_upload_n", 0) + 1
        return message

    forms.act(run, clear=[_PLAN])
