"""The Streamlit app's support modules (the only ones importing streamlit), and the map scripts it
serves."""
