"""The chat: ``streamlit run app.py`` in a checkout, ``citeqa chat`` anywhere. The page is qa/chat_app.py."""

from qa.chat_app import main

main()
